#!/usr/bin/env bash
# The portable bundle's size: compressed, unpacked, and its biggest files (goal: under 30 MB
# compressed; docs/benchmarks.md, "The portable bundle").
#
#   bash perf/bundle_size.sh [TARBALL]            # a bundle made earlier
#   bash perf/bundle_size.sh [--build-dir DIR]    # makes one first (scripts/bundle.sh, into a temporary folder)
# Exit 1 when the compressed size is over the goal.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
goal=$((30 * 1000 * 1000))
tmp=$(mktemp -d /tmp/bp-bundle-size.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
if [ $# -ge 1 ] && [ "${1#--}" = "$1" ]; then
  tarball=$1
else
  tarball=$(bash "$src/scripts/bundle.sh" "$@" --out "$tmp/dist" 2>"$tmp/bundle.log") || { cat "$tmp/bundle.log" >&2; exit 1; }
fi
[ -f "$tarball" ] || { echo "bundle_size.sh: no such tarball: $tarball" >&2; exit 2; }
mkdir "$tmp/x"
tar -xzf "$tarball" -C "$tmp/x"
compressed=$(stat -c %s "$tarball")
unpacked=$(find "$tmp/x" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
files=$(find "$tmp/x" -type f | wc -l)
mb() { awk -v b="$1" 'BEGIN {printf "%.1f MB", b / 1e6}'; }
basename "$tarball"
printf '  compressed   %12d bytes  %s  (goal: under %s)\n' "$compressed" "$(mb "$compressed")" "$(mb "$goal")"
printf '  unpacked     %12d bytes  %s  in %d files\n' "$unpacked" "$(mb "$unpacked")" "$files"
printf '  ratio        %12s\n' "$(awk -v c="$compressed" -v u="$unpacked" 'BEGIN {printf "%.2f", c / u}')"
echo "  biggest files (unpacked; gzip -9 alone):"
find "$tmp/x" -type f -printf '%s %P\n' | sort -rn | head -10 | while read -r size path; do
  gz=$(gzip -9c "$tmp/x/$path" | wc -c)
  printf '    %10d  %8d  %s\n' "$size" "$gz" "${path#*/}"
done
if [ "$compressed" -ge "$goal" ]; then echo "OVER THE GOAL" >&2; exit 1; fi
