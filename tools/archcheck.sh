#!/bin/bash
# Architecture check of the tree: who includes whom, how long the DJMFS
# sources are, and what the built DJMFS libraries export.
#
# DJMFS is three parts, one directory each, that meet only at the public
# headers (djmfs/djmfs.h, djmfs/djmfs_server.h) or at the protocol part's
# private headers:
#   djmfs/proto    stateless code both sides speak (frames, codec, CRC,
#                  the secret handshake, buffers, logging, the superblock)
#   djmfs/server   the metadata server, its store, mkfs, fsck
#   djmfs/client   the client library
# The programs (djmfs/*.c, a tool's own djmfs-*.h, djmfs/bench/) use the public
# headers only.
# A file's part is the directory it sits in.  The script fails (exit 1)
# when a file under djmfs/ is in no known place, when two files of the
# parts have the same name, when a part includes another part's private
# header (client and server may include proto's; proto includes
# neither), when a component includes another component's private header
# (sched, djmfs, streamd meet only at iosched.h, djmfs.h and
# djmfs_server.h), when a source file under djmfs/ is over MAX_LINES,
# when a .sym file does not list exactly what its public header
# declares, or, given a build directory, when libdjmfs.so exports a
# server name.
#
# Usage: tools/archcheck.sh [BUILDDIR]   (from the source tree's top)
set -u

MAX_LINES=${MAX_LINES:-1200}
top=$(cd "$(dirname "$0")/.." && pwd)
build=
if [ -n "${1:-}" ]; then
	build=$(cd "$1" && pwd) || exit 2
fi
cd "$top" || exit 2
status=0

# ---- parts ------------------------------------------------------------
part_of() { # part_of PATH -> proto | server | client | public | program | unknown
	case $1 in
	djmfs/djmfs.h | djmfs/djmfs_server.h) echo public ;;
	djmfs/proto/*.[ch]) echo proto ;;
	djmfs/server/*.[ch]) echo server ;;
	djmfs/client/*.[ch]) echo client ;;
	djmfs/*.c | djmfs/djmfs-*.h | djmfs/bench/*.[ch]) echo program ;;
	*) echo unknown ;;
	esac
}

in_list() { # in_list WORD LIST...
	local w=$1 x
	shift
	for x in $*; do [ "$x" = "$w" ] && return 0; done
	return 1
}

includes() { # includes FILE -> the quoted includes, one a line
	sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$1"
}

mapfile -t djmfs_files < <(find djmfs -name '*.[ch]' | sort)

echo "== DJMFS files outside their parts' directories"
# A file's part, by its name: the directory that holds it.
declare -A hpart=()
stray=0
for path in "${djmfs_files[@]}"; do
	p=$(part_of "$path")
	if [ "$p" = unknown ]; then
		echo "FAIL: $path is in no part's directory"
		stray=1
		continue
	fi
	[ "$p" = program ] && continue
	# Names stay distinct across the parts: includes and the call graph
	# (tools/callgraph.sh) name files without their directory.
	h=$(basename "$path")
	if [ -n "${hpart[$h]:-}" ]; then
		echo "FAIL: $h is in both ${hpart[$h]} and $p"
		stray=1
	fi
	hpart[$h]=$p
done
[ $stray = 0 ] && echo "  none"
[ $stray = 1 ] && status=1

echo "== include edges between DJMFS parts (file -> header)"
declare -A edges=()
for path in "${djmfs_files[@]}"; do
	f=${path#djmfs/}
	from=$(part_of "$path")
	[ "$from" = unknown ] && continue
	for h in $(includes "$path"); do
		[ "$h" = config.h ] && continue
		to=${hpart[$h]:-}
		# bench/'s own header is the benchmark's, not a part's.
		[ -z "$to" ] && [ -e "$(dirname "$path")/$h" ] && continue
		to=${to:-"other($h)"}
		[ "$from" != "$to" ] && edges["$from -> $to"]+=" $f:$h"
		bad=
		case "$from:$to" in
		proto:server | proto:client) bad="proto includes a side's private header" ;;
		client:server) bad="client includes a server private header" ;;
		server:client) bad="server includes a client private header" ;;
		program:proto | program:server | program:client)
			bad="a program includes a private header" ;;
		esac
		if [ -n "$bad" ]; then
			echo "FAIL: $f includes $h: $bad"
			status=1
		fi
	done
done
for e in "${!edges[@]}"; do
	echo "  $e:${edges[$e]}"
done | sort

echo "== include edges between components"
declare -A own=()
for c in sched djmfs streamd; do
	for h in "$c"/*.h "$c"/*/*.h; do
		[ -e "$h" ] && own[$(basename "$h")]=$c
	done
done
public_any="iosched.h djmfs.h djmfs_server.h"
declare -A cedges=()
for c in sched djmfs streamd; do
	while IFS= read -r path; do
		for h in $(includes "$path"); do
			o=${own[$h]:-}
			[ -z "$o" ] || [ "$o" = "$c" ] && continue
			cedges["$c -> $o"]+=" $h"
			if ! in_list "$h" $public_any; then
				echo "FAIL: $path includes $h, private to $o"
				status=1
			fi
		done
	done < <(find "$c" -name '*.[ch]')
done
for e in "${!cedges[@]}"; do
	echo "  $e:$(tr ' ' '\n' <<<"${cedges[$e]}" | sort -u | tr '\n' ' ')"
done | sort

echo "== DJMFS sources over $MAX_LINES lines"
over=0
while IFS= read -r path; do
	n=$(wc -l <"$path")
	if [ "$n" -gt "$MAX_LINES" ]; then
		echo "FAIL: $path: $n lines ($(part_of "$path"))"
		over=1
	fi
done < <(find djmfs -name '*.[ch]' | sort)
[ $over = 0 ] && echo "  none"
[ $over = 1 ] && status=1

echo "== export lists against the public headers"
declared() { # declared HEADER -> the functions it declares
	grep -o '\bdjmfs_[a-z][a-z0-9_]*(' "$1" | tr -d '(' | sort -u
}
check_sym() { # check_sym SYMFILE HEADER
	local d
	d=$(diff <(declared "$2") <(sort -u "$1"))
	if [ -n "$d" ]; then
		echo "FAIL: $1 and $2 differ (< header only, > list only):"
		echo "$d" | grep '^[<>]' | sed 's/^/  /'
		status=1
	else
		echo "  $1: $(wc -l <"$1") names, as $2 declares"
	fi
}
check_sym djmfs/libdjmfs.sym djmfs/djmfs.h
check_sym djmfs/libdjmfs-server.sym djmfs/djmfs_server.h

if [ -n "$build" ]; then
	echo "== exports of the built libraries (nm -D --defined-only)"
	for lib in libdjmfs libdjmfs-server; do
		so=$build/djmfs/.libs/$lib.so
		if [ ! -e "$so" ]; then
			echo "FAIL: $so is not built"
			status=1
			continue
		fi
		syms=$(nm -D --defined-only "$so" | awk '$2 ~ /[TDBR]/ {print $3}' |
		       grep -v '^_' | sort)
		echo "  $lib.so: $(wc -w <<<"$syms") names: $(tr '\n' ' ' <<<"$syms")"
		extra=$(comm -23 <(echo "$syms") <(sort -u "djmfs/$lib.sym"))
		if [ -n "$extra" ]; then
			echo "FAIL: $lib.so exports names not in $lib.sym: $extra"
			status=1
		fi
	done
	leak=$(nm -D --defined-only "$build/djmfs/.libs/libdjmfs.so" 2>/dev/null |
	       awk '{print $3}' | grep -xF -f djmfs/libdjmfs-server.sym)
	if [ -n "$leak" ]; then
		echo "FAIL: libdjmfs.so exports server names: $leak"
		status=1
	else
		echo "  libdjmfs.so exports no server name"
	fi
fi

[ $status = 0 ] && echo "archcheck: ok" || echo "archcheck: FAILED"
exit $status
