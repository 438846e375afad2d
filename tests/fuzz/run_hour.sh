#!/bin/sh
# The long run the issue asks for (once, by hand; CI runs each target for a
# bounded FUZZ_SECONDS in tests/test_fuzz.py): one target for an hour, in
# one process (no -jobs, so libFuzzer writes to this script's output), at
# the lowest priority, with AddressSanitizer, UBSan and LeakSanitizer as
# build.sh sets them.  The corpus is a copy of the committed one, so the
# repository is untouched; crash inputs land in WORKDIR as crash-<sha1>.
#
#   tests/fuzz/run_hour.sh [core|frames] [WORKDIR] [SECONDS]
#       defaults: core, /tmp/fuzz-hour-<target>, 3600
#
# In the background, log beside it:
#   nohup tests/fuzz/run_hour.sh core > /work/fuzz_hour.log 2>&1 &
# The last lines of the log say "Done N runs" and, with -print_final_stats,
# the coverage reached; reproduce a crash with: WORKDIR/fuzz_<target> CRASH.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
target=${1:-core}
work=${2:-/tmp/fuzz-hour-$target}
seconds=${3:-3600}

case $target in
core) corpus=$here/corpus-core; flag=--core ;;
frames) corpus=$here/corpus; flag= ;;
*) echo "run_hour.sh: target is core or frames, not $target" >&2; exit 2 ;;
esac

mkdir -p "$work/corpus"
cp "$corpus"/* "$work/corpus/"
# shellcheck disable=SC2086  # $flag is empty or one word
"$here/build.sh" $flag "$work/fuzz_$target"
cd "$work"	# where any *.btr backtrace lands
echo "run_hour.sh: $target for ${seconds}s from $(date -u +%FT%TZ)"
exec nice -n 19 "$work/fuzz_$target" -max_total_time="$seconds" -timeout=5 \
	-rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$work/" "$work/corpus"
