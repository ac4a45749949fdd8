#!/usr/bin/env bash
# Makes the portable bundle: dist/bench-proxy-<version>-linux-x86_64.tar.gz, for hosts without our
# build dependencies (docs/bundle.md). It holds bench-proxy, bench-proxy-fleet, mock-engine and the
# engine's shim bench-proxy-shim (linked against nothing: copied as it is), every shared library they need beyond glibc (bin/ finds them through the rpath $ORIGIN/../lib), the docs,
# the shipped configs and workloads, and a systemd unit for the agent.
#
#   bash scripts/bundle.sh [--build-dir DIR] [--out DIR]
#
# --build-dir (or BP_BUILD_DIR): the build whose bin/ is bundled (default ./build, built with
#   scripts/build.sh when its binaries are missing). Nothing there is modified: the rpath is set
#   with patchelf on copies.
# --out (or BP_BUNDLE_OUT): where the tarball goes (default ./dist).
# The tarball is reproducible from the same binaries: names sorted, owner 0:0, every mtime set to
# SOURCE_DATE_EPOCH (default: the commit time of the source tree's HEAD), gzip without a timestamp.
# Prints what it excluded and why, the glibc the bundle needs, and the tarball's path last.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BP_BUILD_DIR:-}
out_dir=${BP_BUNDLE_OUT:-$src/dist}
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --build-dir=*) build_dir=${1#*=}; shift ;;
    --out) out_dir=$2; shift 2 ;;
    --out=*) out_dir=${1#*=}; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bundle.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
all_bins=(bench-proxy bench-proxy-fleet bench-proxy-shim mock-engine)
if [ -z "$build_dir" ]; then
  build_dir=$src/build
  for b in "${all_bins[@]}"; do
    if [ ! -x "$build_dir/bin/$b" ]; then bash "$src/scripts/build.sh" >&2; break; fi
  done
fi
build_dir=$(cd "$build_dir" && pwd)
for b in "${all_bins[@]}"; do
  [ -x "$build_dir/bin/$b" ] || { echo "bundle.sh: $build_dir/bin/$b is missing (build it first)" >&2; exit 1; }
done
for tool in patchelf objdump readelf ldd tar gzip; do
  command -v "$tool" >/dev/null || { echo "bundle.sh: needs $tool (bash scripts/deps.sh installs it)" >&2; exit 1; }
done
[ "$(uname -m)" = x86_64 ] || { echo "bundle.sh: only x86_64 is bundled (this is $(uname -m))" >&2; exit 1; }

version=$("$build_dir/bin/bench-proxy" --version | sed -n '1s/^bench-proxy \([^ ]*\).*/\1/p')
[ -n "$version" ] || { echo "bundle.sh: cannot read the version from bench-proxy --version" >&2; exit 1; }
name=bench-proxy-$version-linux-x86_64
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$src" log -1 --format=%ct 2>/dev/null || echo 0)
fi

stage=$(mktemp -d /tmp/bench-proxy-bundle.XXXXXX)
trap 'rm -rf "$stage"' EXIT
root=$stage/$name
mkdir -p "$root/bin" "$root/lib" "$root/share/bench-proxy/docs" "$root/share/bench-proxy/configs" \
         "$root/share/bench-proxy/systemd" "$root/share/doc/third-party"

# glibc's own libraries stay the host's. They are one build with the dynamic loader (they call
# each other through GLIBC_PRIVATE symbols), the kernel interface and the NSS modules that
# getaddrinfo/getpwnam dlopen are the host's, and the loader itself is named by absolute path in
# every binary (PT_INTERP /lib64/ld-linux-x86-64.so.2): a bundled copy would not even be used.
# Everything else, libstdc++ and libgcc_s included, comes with the bundle. (libcrypt is no longer
# glibc's, libxcrypt's: it would be bundled; none of ours needs it.)
glibc_re='^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libmvec\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libresolv\.so\.2|libutil\.so\.1|libanl\.so\.1|libBrokenLocale\.so\.1|libthread_db\.so\.1|libc_malloc_debug\.so\.0|libnss_[a-z0-9_]+\.so\.2)$'

# The dynamically linked binaries get their libraries and an rpath; a static one (bench-proxy-shim
# on x86-64: no PT_INTERP, no library at all) is copied as it is.
bins=() static_bins=()
for b in "${all_bins[@]}"; do
  if readelf -lW "$build_dir/bin/$b" | grep -q 'Requesting program interpreter'; then bins+=("$b"); else static_bins+=("$b"); fi
done
for b in "${static_bins[@]}"; do cp "$build_dir/bin/$b" "$root/bin/$b"; done
[ ${#static_bins[@]} -eq 0 ] || echo "static, copied as they are: ${static_bins[*]}" >&2
declare -A libs=()
for b in "${bins[@]}"; do
  cp "$build_dir/bin/$b" "$root/bin/$b"
  # ldd lists the whole closure; a library it cannot find is an error here, not on the host.
  deps=$(ldd "$build_dir/bin/$b")
  if grep -q 'not found' <<<"$deps"; then echo "bundle.sh: $b: unresolved libraries:" >&2; grep 'not found' <<<"$deps" >&2; exit 1; fi
  while read -r soname path; do
    [ -n "$soname" ] || continue
    if [[ $soname =~ $glibc_re ]]; then continue; fi
    libs[$soname]=$path
  done < <(awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' <<<"$deps")
done
excluded=$(ldd "${bins[@]/#/$build_dir/bin/}" | awk '{print $1}' | sed 's|.*/||' | grep -E "$glibc_re" | sort -u | tr '\n' ' ')
echo "glibc's, left to the host: $excluded" >&2
for soname in $(printf '%s\n' "${!libs[@]}" | sort); do
  cp -L "${libs[$soname]}" "$root/lib/$soname"
  chmod 0644 "$root/lib/$soname"
  # The copyright of the Debian package it comes from (the licences travel with the code).
  real=$(readlink -f "${libs[$soname]}")
  pkg=$(dpkg-query -S "$real" 2>/dev/null || dpkg-query -S "${real#/usr}" 2>/dev/null || true)
  pkg=${pkg%%:*}
  if [ -n "$pkg" ] && [ -f "/usr/share/doc/$pkg/copyright" ]; then
    cp "/usr/share/doc/$pkg/copyright" "$root/share/doc/third-party/$pkg.copyright"
    echo "$soname $pkg $(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null)" >>"$stage/libs.txt"
  else
    echo "$soname (package unknown)" >>"$stage/libs.txt"
  fi
done
sort "$stage/libs.txt" >"$root/share/doc/third-party/LIBRARIES"
echo "bundled: $(printf '%s\n' "${!libs[@]}" | sort | paste -sd' ')" >&2

# DT_RPATH (not RUNPATH) on the three binaries only: it is searched before LD_LIBRARY_PATH, and an
# executable's DT_RPATH also serves every library it loads that has no RUNPATH of its own (none of
# Debian's has), so a GPU host's LD_LIBRARY_PATH (CUDA, conda: often a libstdc++ or a libcrypto.so.3
# of their own) cannot swap ours out, and the libraries stay byte for byte Debian's (their sha256 in
# /meta's loaded_libs is the package's; patchelf would also pad each by up to 600 KB). The engines
# bench-proxy starts never inherit it (an rpath is not an environment; theirs is the config's).
# shellcheck disable=SC2016  # $ORIGIN is the loader's, not the shell's
for b in "${bins[@]}"; do patchelf --force-rpath --set-rpath '$ORIGIN/../lib' "$root/bin/$b"; done

# Check: with no environment at all, every library but glibc's resolves inside the bundle.
for f in "${bins[@]/#/$root/bin/}"; do
  while read -r soname arrow path _; do
    [ "$arrow" = "=>" ] || continue
    [[ $soname =~ $glibc_re ]] && continue
    case "$(readlink -f "$path")" in
      "$root"/lib/*) ;;
      *) echo "bundle.sh: $(basename "$f") resolves $soname outside the bundle: $path" >&2; exit 1 ;;
    esac
  done < <(env -i ldd "$f")
done

# The oldest glibc it runs on: the highest GLIBC_x.y version any file needs (VERNEED, not weak).
floor=""
for f in "${bins[@]/#/$root/bin/}" "$root"/lib/*; do
  objdump -T "$f" | awk '$2 != "" && /\*UND\*/ {for (i = 1; i <= NF; i++) if ($i ~ /^\(GLIBC_[0-9.]+\)$/) print $i, $NF}' |
    tr -d '()' | sed "s|^|$(basename "$f") |"
done | sort -k2,2V >"$stage/glibc-needs.txt"
floor=$(tail -1 "$stage/glibc-needs.txt" | awk '{print $2}')
floor=${floor#GLIBC_}
why=$(awk -v v="GLIBC_$floor" '$2 == v {print $1 " (" $3 ")"}' "$stage/glibc-needs.txt" | sort -u | paste -sd, | sed 's/,/, /g')
# Which common hosts that is (their glibc: Ubuntu 20.04 2.31, RHEL 9 2.34, Ubuntu 22.04 2.35,
# Debian 12 2.36, Ubuntu 24.04 and RHEL 10 2.39, Debian 13 2.41).
hosts_ok="" hosts_not=""
while read -r v host; do
  if [ "$(printf '%s\n%s\n' "$floor" "$v" | sort -V | head -1)" = "$floor" ]; then hosts_ok+="${hosts_ok:+, }$host ($v)"
  else hosts_not+="${hosts_not:+, }$host ($v)"; fi
done <<'HOSTS'
2.31 Ubuntu 20.04
2.34 RHEL/Rocky/Alma 9
2.35 Ubuntu 22.04
2.36 Debian 12
2.39 Ubuntu 24.04
2.39 RHEL/Rocky/Alma 10
2.41 Debian 13
HOSTS
own=$(grep -E '^(bench-proxy|bench-proxy-fleet|mock-engine) ' "$stage/glibc-needs.txt" | awk '{print $2}' | sort -V | tail -1)
echo "needs glibc >= $floor: $why; the three binaries themselves need ${own#GLIBC_}" >&2

# Docs, configs, the agent's unit.
cp "$src/README.md" "$root/share/bench-proxy/docs/README.md"
cp "$src"/docs/*.md "$root/share/bench-proxy/docs/"
(cd "$src/configs" && find . -name '*.yaml' -o -name '*.csv' -o -name '*.jsonl' | while read -r f; do
  mkdir -p "$root/share/bench-proxy/configs/$(dirname "$f")"
  cp "$f" "$root/share/bench-proxy/configs/$f"
done)
cp "$src/scripts/bundle/bench-proxy-agent.service" "$src/scripts/bundle/agent.env" "$root/share/bench-proxy/systemd/"
"$build_dir/bin/bench-proxy" --version | sed 's|^binary .*|(the sha256 of each bundled binary: SHA256SUMS)|' >"$stage/version.txt"
sed -e "s|@VERSION@|$version|g" -e "s|@NAME@|$name|g" -e "s|@GLIBC@|$floor|g" -e "s|@GLIBC_WHY@|$why|g" \
    -e "s|@HOSTS_OK@|${hosts_ok:-none of}|g" -e "s|@HOSTS_NOT@|${hosts_not:-none of these}|g" \
    -e "s|@LIBS@|$(printf '%s\n' "${!libs[@]}" | sort | paste -sd' ' | fold -s -w 80 | sed '2,$s/^/             /' | sed 's/ *$//' | sed ':a;N;$!ba;s/\n/\\n/g')|" \
    "$src/scripts/bundle/README.in" >"$root/README"
{ echo; echo "Built from:"; sed 's/^/    /' "$stage/version.txt"; } >>"$root/README"
chmod -R u=rwX,go=rX "$root"
chmod 0755 "$root"/bin/*
(cd "$root" && find bin lib -type f | sort | xargs sha256sum >SHA256SUMS)

mkdir -p "$out_dir"
tarball=$out_dir/$name.tar.gz
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
tar --sort=name --format=gnu --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
    -C "$stage" -cf - "$name" | gzip -9n >"$tarball.tmp"
mv "$tarball.tmp" "$tarball"
echo "$name: $(stat -c %s "$tarball") bytes compressed, $(du -sb "$root" | cut -f1) bytes unpacked, glibc >= $floor" >&2
echo "$tarball"
