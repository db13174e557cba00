#!/usr/bin/env bash
# Integration test of DJMFS's shared secret with the real programs:
# `djmfs secret` makes a 0600 file of 32 random bytes (and will not
# overwrite it without --force); djmfsd --secret-file serves the djmfs
# tool when it has the same file (--secret-file or $DJMFS_SECRET_FILE)
# and refuses it, with a clear message and exit status 1, when it has
# another secret or none, logging each refusal with the peer; a secret
# file that group or others may read is refused by djmfsd and by the
# tool; and a client with a secret refuses a server without one.
#
# Environment: DJMFS, DJMFSD (defaults: the build tree's programs, see
# lib.sh).  Exit status: 0 pass, 1 fail, 77 skipped.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_programs DJMFS DJMFSD
make_workdir auth-test
out=$work/out
err=$work/err
unset DJMFS_SECRET_FILE

# expect CODE NAME CMD...: CMD must exit CODE; with CODE != 0 it must
# say why on stderr.  stdout in $out, stderr in $err.
expect() {
	local code=$1 name=$2 rc=0
	shift 2
	"$@" >"$out" 2>"$err" || rc=$?
	[ "$rc" -eq "$code" ] || fail "$name: exit $rc, expected $code: $(cat "$err")"
	[ "$code" -eq 0 ] || [ -s "$err" ] || fail "$name: exit $rc, no message"
}

# says TEXT: the last command's stderr contains TEXT.
says() {
	grep -qF -- "$1" "$err" || fail "expected '$1' in: $(cat "$err")"
}

file_mode() { stat -c %a "$1"; }
file_size() { stat -c %s "$1"; }

expect 0 "mkfs" "$DJMFS" -q mkfs "$vol" --size 64M

# --- Making secrets. -----------------------------------------------------
expect 0 "secret" "$DJMFS" secret "$work/secret"
[ "$(file_mode "$work/secret")" = 600 ] || fail "secret mode $(file_mode "$work/secret")"
[ "$(file_size "$work/secret")" = 32 ] || fail "secret size $(file_size "$work/secret")"
pass "djmfs secret wrote $(file_size "$work/secret") bytes, mode $(file_mode "$work/secret")"
cp -p "$work/secret" "$work/secret.orig"
expect 1 "secret over an existing file" "$DJMFS" secret "$work/secret"
says "exists; --force replaces it"
cmp -s "$work/secret" "$work/secret.orig" || fail "the existing secret changed"
pass "djmfs secret keeps an existing file (exit 1)"
expect 0 "another secret" "$DJMFS" -q secret "$work/wrong"
cp -p "$work/wrong" "$work/wrong.orig"
chmod 644 "$work/wrong"
expect 0 "secret --force" "$DJMFS" -q secret --force "$work/wrong"
cmp -s "$work/wrong" "$work/wrong.orig" && fail "--force kept the old bytes"
[ "$(file_mode "$work/wrong")" = 600 ] || fail "--force left mode $(file_mode "$work/wrong")"
cmp -s "$work/secret" "$work/wrong" && fail "two secrets are equal"
pass "djmfs secret --force replaces a file (new bytes, mode 600 again)"

# --- A secret file others may read is refused. ---------------------------
cp "$work/secret" "$work/open"
chmod 644 "$work/open"
expect 1 "djmfsd with a 0644 secret" timeout 10 "$DJMFSD" --volume "$vol" \
	--listen "$sock" --secret-file "$work/open"
says "group or others may access it (mode 0644)"
says "chmod 600"
[ ! -S "$sock" ] || fail "djmfsd listened with a refused secret"
pass "djmfsd refuses a 0644 secret file (exit 1)"
expect 1 "djmfs with a 0644 secret" "$DJMFS" --server "unix:$sock" \
	--secret-file "$work/open" ls
says "group or others may access it"
pass "djmfs refuses a 0644 secret file (exit 1)"

# --- A server with the secret. -------------------------------------------
# start_server polls with the tool, which finds the secret in the
# environment.
export DJMFS_SECRET_FILE=$work/secret
start_server --secret-file "$work/secret" --log-level debug
grep -q "clients must prove the shared secret (32 bytes)" "$work/djmfsd.log" ||
	fail "djmfsd does not say it demands the secret"
unset DJMFS_SECRET_FILE

expect 0 "ls with the secret" "$DJMFS" --secret-file "$work/secret" ls
expect 0 "df with the secret" "$DJMFS" --secret-file "$work/secret" df
expect 0 "stats with the secret" "$DJMFS" --secret-file "$work/secret" stats
grep -q '"sessions":1' "$out" || fail "stats: $(cat "$out")"
pass "the right secret: ls, df and stats succeed"
expect 0 "ls with \$DJMFS_SECRET_FILE" env DJMFS_SECRET_FILE="$work/secret" \
	"$DJMFS" ls
pass "the right secret from \$DJMFS_SECRET_FILE succeeds"

expect 1 "ls with another secret" "$DJMFS" --secret-file "$work/wrong" ls
says "did not prove the volume's shared secret"
says "Permission denied (EACCES)"
pass "another secret: exit 1, the server did not prove it"

expect 1 "ls without a secret" "$DJMFS" ls
says "requires the volume's shared secret, and none was given"
says "Permission denied (EACCES)"
pass "no secret: exit 1, the server requires one"

grep -q "(djmfs ls (pid [0-9]*)): refused: HELLO without a proof" \
	"$work/djmfsd.log" || fail "the refusal is not logged with the peer"
n=$(grep -c "refused:" "$work/djmfsd.log" || true)
pass "djmfsd logged $n refusal(s), naming the peer"
grep -q "proved the shared secret" "$work/djmfsd.log" ||
	fail "no accepted client in the log"
stop_server
pass "djmfsd stopped cleanly"

# --- A server without a secret is refused by a client with one. ----------
start_server
expect 1 "ls with a secret, server without" "$DJMFS" --secret-file \
	"$work/secret" ls
says "has no shared secret but we have one"
pass "a client with a secret refuses a server without one (exit 1)"
expect 0 "ls without secrets" "$DJMFS" ls
pass "no secret on either side: served as before"
stop_server
