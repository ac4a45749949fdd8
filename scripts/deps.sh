#!/usr/bin/env bash
# Installs bench-proxy's build and test dependencies from Debian 12's packages (as root).
# Only what is missing is installed, so repeated runs cost nothing.
set -euo pipefail
pkgs=(g++ cmake ninja-build ccache git ca-certificates curl procps lshw python3
      libcaf-dev libboost1.81-dev libyaml-cpp-dev nlohmann-json3-dev libspdlog-dev libssl-dev
      libgtest-dev googletest libcli11-dev libjs-chart.js chromium
      prometheus-cpp-dev prometheus python3-prometheus-client iproute2
      patchelf debootstrap)  # the portable bundle (scripts/bundle.sh) and its test in a bare root
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm for the real-client tests (the official openai package); any Node >= 18 will do.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing+=(nodejs npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/deps.sh: missing packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
