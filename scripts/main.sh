#!/usr/bin/env bash
# The main job: set-up, build, then usb4bench in two sections and one report:
#   1. the cable (the headline): every fabric between two hosts made of
#      network namespaces, one rank per host, joined by a veth cable with
#      thunderbolt-net's MTU (usb4bench run --cable; needs root: without it
#      the section is recorded as missing, with the reason);
#   2. the same host: usb4 (its shm link), Ethernet over loopback, and Open
#      MPI's shared memory;
# then a report with the cable first and plots against published
# RoCE/Ethernet figures.  Within 10 minutes on the project's 2-core VM
# (set-up already done, build incremental): see the run sizes below.
#   scripts/main.sh [OUTPUT_DIR]     (default: reports/local-<time>)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[main] %s\n' "$*"; }

# Each section: the default benchmarks (latency, bw, put_latency, allreduce)
# at their default sizes (up to 1 MiB), 3 repetitions kept each (the report
# takes medians).  Timed under load from 7 other jobs on the 2-core VM,
# set-up done and build incremental: 199 s in all (cable 36 runs in 112 s,
# same host 46 runs in 69 s); the 10-minute budget leaves room to spare.
# --replace: the sections' folders are this job's own; run again into the same
# DIR, it replaces them (a run appends to a folder's results otherwise).
RUN_ARGS=(--repeat 3 --replace)

start=$(date +%s)
say "set-up (scripts/setup.sh: installs only what is missing)"
scripts/setup.sh
say "build (scripts/build.sh: incremental)"
scripts/build.sh
out=${1:-reports/local-$(date +%Y%m%d-%H%M%S)}
say "section 1, the cable: usb4bench run --cable ${RUN_ARGS[*]} -> $out/cable"
usb4bench run --cable "${RUN_ARGS[@]}" --output "$out/cable"
say "section 2, the same host: usb4bench run ${RUN_ARGS[*]} -> $out/same-host"
usb4bench run "${RUN_ARGS[@]}" --output "$out/same-host"
say "usb4bench report $out/cable $out/same-host -> $out"
# --screenshot: opened in headless Chromium (images load, no console errors),
# the first screen kept as screenshot.png
usb4bench report "$out/cable" "$out/same-host" --output "$out" --name "$(basename "$out")" \
	--screenshot
say "report: $out/report.html (Markdown: $out/report.md)"
say "whole job: $(( $(date +%s) - start )) s"
