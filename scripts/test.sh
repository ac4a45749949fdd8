#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every unit and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
# The openai npm package (tests/node) and llama.cpp's llama-server (built once and cached outside
# the repository: about 20 minutes cold on 2 cores, seconds afterwards) are CTest fixtures
# (setup.node_modules, setup.llama): ctest installs them before the tests that need them.
cd build
ctest --output-on-failure --timeout 600 "$@"
