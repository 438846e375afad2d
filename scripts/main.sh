#!/usr/bin/env bash
# The main job: set-up, build, then the comparison of usb4 against Open MPI's
# shared memory (vader) and libfabric's tcp provider on this host.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build.sh
out=${1:-reports/local-$(date +%Y%m%d-%H%M%S)}
printf '[main] comparing usb4, vader and tcp; raw outputs in %s\n' "$out"
python3 bench/compare_local.py --output "$out"
