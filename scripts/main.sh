#!/usr/bin/env bash
# The main job: set-up, build, then usb4bench: OSU benchmarks over usb4,
# Ethernet (libfabric tcp and Open MPI's btl tcp) and Open MPI's shared
# memory, and a report with plots against published RoCE/Ethernet figures.
#   scripts/main.sh [OUTPUT_DIR]     (default: reports/local-<time>)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build.sh
out=${1:-reports/local-$(date +%Y%m%d-%H%M%S)}
printf '[main] usb4bench run: default benchmarks and fabric profiles -> %s/results\n' "$out"
usb4bench run --output "$out/results"
printf '[main] usb4bench report -> %s\n' "$out"
# --screenshot: opened in headless Chromium (images load, no console errors),
# the first screen kept as screenshot.png
usb4bench report "$out/results" --output "$out" --screenshot
printf '[main] report: %s/report.html (Markdown: %s/report.md)\n' "$out" "$out"
