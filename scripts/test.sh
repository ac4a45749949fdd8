#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every unit and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
# The real-client test needs the official openai package (pinned), installed into tests/node only.
if [ ! -f tests/node/node_modules/openai/package.json ]; then
  (cd tests/node && npm ci --no-audit --no-fund --silent >/dev/null 2>&1 || npm install --no-audit --no-fund --silent -E openai@6.30.1 >/dev/null)
fi
# A real engine for the end-to-end tests: llama.cpp's llama-server, built once and cached outside
# the repository (about 20 minutes cold on 2 cores, seconds afterwards).
bash scripts/llama-setup.sh >/dev/null
cd build
ctest --output-on-failure --timeout 600 "$@"
