#!/usr/bin/env bash
# The shape of DJMFS, checked on the tree as built: every file of a part
# sits in that part's directory (djmfs/proto, djmfs/server, djmfs/client),
# no part includes another part's private header, no source file under
# djmfs/ is over 1,200 lines, each installed library exports exactly its
# header's names (libdjmfs no server name), and the file-level call graph
# of the three parts' objects has no cycle (tools/archcheck.sh,
# tools/callgraph.sh).
#
# Environment: DJMFS (the build tree's djmfs tool: its directory's parent
# is the build tree).
# Exit status: 0 pass, 1 fail, 77 skipped (nm missing).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

command -v nm >/dev/null 2>&1 || { echo "SKIP: nm is not installed" >&2; exit 77; }
need_programs DJMFS
make_workdir arch
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$(dirname "$DJMFS")/.." && pwd)

bash "$top/tools/archcheck.sh" "$build" >"$work/arch.out" 2>&1 ||
	{ cat "$work/arch.out" >&2; fail "tools/archcheck.sh"; }
pass "includes, file lengths and exports as tools/archcheck.sh wants"
bash "$top/tools/callgraph.sh" "$build" >"$work/calls.out" 2>&1 ||
	{ grep -A20 CYCLE "$work/calls.out" >&2 || true; fail "a call cycle in djmfs"; }
pass "no call cycle among djmfs's files ($(grep -c -- ' -> ' "$work/calls.out") edges)"
