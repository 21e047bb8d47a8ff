#!/usr/bin/env bash
# Strowger media-engine CPU benchmark (crates/media). Runs, in order:
#   time       wall-clock ns per 20 ms frame / tick: codecs, resampler, one transcoded call, mixer
#   callgrind  the same work under valgrind: instructions per frame / tick (the repeatable figure)
#
# Usage: bench/media/run.sh [all|time|callgrind]      (default: all)
# Env:   OUT=dir (default bench/media/results)
# Results: $OUT/{codecs,call,mixer,callgrind}.txt, each starting with date, nproc, CPU, load1.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-bench/media/results}
WHAT=${1:-all}
mkdir -p "$OUT"
MB=target/release/mediabench

machine() {
  echo "# $(date -u +%FT%TZ)  nproc=$(nproc)  $(lscpu | grep 'Model name' | sed 's/  */ /g')  load1=$(cut -d' ' -f1 /proc/loadavg)"
  echo "# git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
}

echo "building mediabench (release)..." >&2
cargo build --release -p mediabench >&2

runlog() { # file cmd...
  local f=$1; shift
  echo "\$ $*  # load1 before: $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$f" >&2
  "$@" 2>&1 | tee -a "$f" >&2
  echo >> "$f"
}

run_time() {
  local f
  f=$OUT/codecs.txt; machine > "$f"; echo >> "$f"
  runlog "$f" $MB codecs --frames 3000 --warmup 200
  runlog "$f" $MB codecs --frames 3000 --warmup 200
  f=$OUT/call.txt; machine > "$f"; echo >> "$f"
  # The call as the pipeline sets it up (OpusSettings::default(): Opus at 8 kHz, NB, c5, no FEC)...
  for _ in 1 2 3; do runlog "$f" $MB call --seconds 120 --warmup 2; done
  # ...with a far end that sends narrowband Opus (SDP maxplaybackrate=8000)...
  runlog "$f" $MB call --seconds 120 --warmup 2 --far-end-narrowband
  # ...and the configuration before the telephony settings (48 kHz, c10, fullband, FEC 10 %).
  runlog "$f" $MB call --seconds 120 --warmup 2 --full
  f=$OUT/mixer.txt; machine > "$f"; echo >> "$f"
  for _ in 1 2 3; do runlog "$f" $MB mixer --participants 50 --speakers 3 --ticks 3000 --warmup 100; done
}

# One valgrind run per item; only `mediabench::measured` (the measured frames, nothing of the
# setup, signal generation or warmup) is counted. Instructions / measured frames.
CGF=$OUT/callgrind.txt
cg() { # label count-field unit cmd-args...
  local label=$1 field=$2 unit=$3; shift 3
  local out=/tmp/mediabench-cg.$$.out
  local cmd=(valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect='mediabench::measured' "$MB" "$@" --callgrind)
  echo "\$ ${cmd[*]}" >> "$CGF"
  local log; log=$("${cmd[@]}" 2>&1)
  echo "$log" | grep -E 'RESULT|Collected' >> "$CGF"
  local ir n
  ir=$(sed -n 's/^summary: //p' "$out")
  n=$(echo "$log" | sed -n "s/.*\"$field\":\([0-9]*\).*/\1/p" | head -n1)
  rm -f "$out"
  printf '%-10s Ir %12s / %6s %s = %10.0f instructions per %s\n' "$label" "$ir" "$n" "$field" \
    "$(echo "$ir / $n" | bc -l)" "$unit" | tee -a "$CGF" >&2
  echo >> "$CGF"
}

run_callgrind() {
  machine > "$CGF"; echo >> "$CGF"
  for item in enc-pcmu dec-pcmu enc-pcma dec-pcma enc-g722 dec-g722 enc-opus dec-opus \
              enc-opus8 dec-opus8 rs-8-48 rs-48-8 rs-16-48 rs-48-16 rs-tel-8-48 rs-tel-48-8; do
    cg "$item" measured_frames "20 ms frame" codecs --only "$item" --frames 300 --warmup 50
  done
  cg call measured_ticks "20 ms tick (both directions)" call --seconds 10 --warmup 1
  cg call-nbfar measured_ticks "20 ms tick (both directions)" call --seconds 10 --warmup 1 --far-end-narrowband
  cg call-full measured_ticks "20 ms tick (both directions)" call --seconds 10 --warmup 1 --full
  cg mixer measured_ticks "mix tick" mixer --participants 50 --speakers 3 --ticks 300 --warmup 50
}

case $WHAT in
  all) run_time; run_callgrind ;;
  time) run_time ;;
  callgrind) run_callgrind ;;
  *) echo "usage: $0 [all|time|callgrind]" >&2; exit 2 ;;
esac
