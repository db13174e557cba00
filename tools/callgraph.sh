#!/bin/bash
# File-level call graph of libdjmfs, from its compiled objects: for each
# object of a djmfs/{proto,server,client}/*.c file, every undefined
# symbol that another djmfs object defines is an edge "this file -> that
# file" (a call, or a reference to a function or a table).  Prints the
# edges with the symbols behind them, then checks the graph for cycles
# with tsort.  Exits 0 when the files form a hierarchy, 1 on a cycle (the
# files on each are printed), 2 on a usage error.  With FILEs (source names, e.g. djmfs_client.c), only the
# edges among those files count.
#
#   tools/callgraph.sh [BUILD_DIR [FILE...]]   (default: build; make first)
set -eu

build=${1:-build}
[ $# -gt 0 ] && shift
only=" $* "
objdir=$build/djmfs
# The objects of the three parts' libraries (libdjmfs, libdjmfs-proto,
# libdjmfs-server-core), each under its part's directory, as the build's
# Makefile lists them now: a build directory that has lived through a
# change of the libraries keeps the old objects, which would add edges the
# code no longer has.  libtool keeps the PIC objects under .libs/, the
# others beside them.  Files are named without their directory: the
# parts' file names are distinct (tools/archcheck.sh).
objs=()
if los=$(make -s --no-print-directory -C "$build" -f Makefile -f - \
	callgraph-objects 2>/dev/null <<'MK'
callgraph-objects: ; @echo $(am_djmfs_libdjmfs_la_OBJECTS) $(am_djmfs_libdjmfs_proto_la_OBJECTS) $(am_djmfs_libdjmfs_server_core_la_OBJECTS)
MK
); then
	for lo in $los; do
		d=$(dirname "$lo") b=$(basename "$lo" .lo)
		if [ -f "$build/$d/.libs/$b.o" ]; then
			objs+=("$build/$d/.libs/$b.o")
		elif [ -f "$build/$d/$b.o" ]; then
			objs+=("$build/$d/$b.o")
		fi
	done
fi
if [ ${#objs[@]} -eq 0 ]; then
	echo "callgraph: no libdjmfs objects under $objdir (build first)" >&2
	exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# name of the source file an object was built from
src() {
	local b=${1##*/}
	b=${b#libdjmfs_*la-}
	echo "${b%.o}.c"
}

# symbol <TAB> file, for every global symbol an object defines
for o in "${objs[@]}"; do
	nm -g --defined-only "$o" | awk -v f="$(src "$o")" \
		'NF == 3 { print $3 "\t" f }'
done | sort >"$tmp/defs"

# file <TAB> symbol, for every symbol an object needs
for o in "${objs[@]}"; do
	nm -u "$o" | awk -v f="$(src "$o")" '{ print $NF "\t" f }'
done | sort >"$tmp/uses"

# from <TAB> to <TAB> symbol
join -t "$(printf '\t')" "$tmp/uses" "$tmp/defs" |
	awk -F '\t' -v only="$only" '
		function in_set(f) { return only == "  " || index(only, " " f " ") }
		$2 != $3 && in_set($2) && in_set($3) { print $2 "\t" $3 "\t" $1 }' |
	sort >"$tmp/edges"

echo "file -> file: symbols"
awk -F '\t' '
	{ k = $1 " -> " $2; s[k] = n[k]++ ? s[k] " " $3 : $3 }
	END { for (k in s) print k " (" n[k] "): " s[k] }' "$tmp/edges" | sort

if cut -f1,2 "$tmp/edges" | sort -u | tr '\t' ' ' |
	tsort >/dev/null 2>"$tmp/loop"; then
	echo "no cycle"
	exit 0
fi
# tsort names each loop it finds, one file a line after a header.
sed -e 's/^tsort: -: input contains a loop:$/CYCLE:/' -e 's/^tsort: /  /' \
	"$tmp/loop"
exit 1
