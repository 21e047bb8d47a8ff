#!/usr/bin/env bash
# Strowger forwarding benchmark. Runs, in order:
#   inproc     the SFU core in process, virtual network and clock: ns of SFU time per forwarded packet
#   callgrind  the same under valgrind: instructions per forwarded packet (the repeatable figure)
#   udp        the real server over WebSocket + UDP on 127.0.0.1: CPU per packet, loss, latency, sweep
#
# Usage: bench/run.sh [all|inproc|callgrind|udp]      (default: all)
# Env:   OUT=dir (default bench/results)  SECS=seconds per udp step (default 20)
#        SWEEP="1 2 3 4 5 6" rooms per udp step (each room: 2 publishers + 40 subscribers)
# Everything listens on 127.0.0.1 only. Results: $OUT/{inproc,callgrind,udp}.txt
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-bench/results}
SECS=${SECS:-20}
SWEEP=${SWEEP:-"1 2 3 4 5 6"}
WHAT=${1:-all}
mkdir -p "$OUT"
LG=target/release/loadgen

machine() {
  echo "# $(date -u +%FT%TZ)  nproc=$(nproc)  $(lscpu | grep 'Model name' | sed 's/  */ /g')  load1=$(cut -d' ' -f1 /proc/loadavg)"
  echo "# git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
}

field() { # field NAME < RESULT-line  -> value of "NAME":value
  sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" | head -n1
}

echo "building loadgen (release)..." >&2
cargo build --release -p loadgen >&2

run_inproc() {
  local f=$OUT/inproc.txt
  { machine; echo; } > "$f"
  # rooms publishers subscribers seconds
  local cases=("1 1 10 10" "1 2 20 10" "1 2 20 10" "1 2 20 10" "1 1 49 10" "4 2 10 10" "10 1 10 10" "20 1 10 5" "40 1 10 5")
  for c in "${cases[@]}"; do
    set -- $c
    local cmd="$LG inproc --rooms $1 --publishers $2 --subscribers $3 --warmup 3 --seconds $4"
    echo "\$ $cmd" | tee -a "$f" >&2
    $cmd 2>&1 | tee -a "$f" >&2
    echo >> "$f"
  done
  echo "inproc results: $f" >&2
}

# Instructions inside Sfu::handle_receive / handle_timeout / poll_output (inclusive of str0m and
# crypto under them), difference of two runs that differ only in window length, divided by the
# difference in forwarded packets: warmup (ICE, DTLS handshakes) cancels out.
cg_point() { # rooms pubs subs short long
  local r=$1 p=$2 s=$3 a=$4 b=$5 ir=() fwd=() rtp=()
  for secs in "$a" "$b"; do
    local cmd=(valgrind --tool=callgrind --callgrind-out-file=/tmp/strowger-cg.$$.$secs
      --toggle-collect='strowger_sfu::Sfu::handle_receive'
      --toggle-collect='strowger_sfu::Sfu::handle_timeout'
      --toggle-collect='strowger_sfu::Sfu::poll_output'
      "$LG" inproc --rooms "$r" --publishers "$p" --subscribers "$s" --warmup 2 --seconds "$secs")
    echo "\$ ${cmd[*]}" >> "$CGF"
    local log; log=$("${cmd[@]}" 2>&1)
    local res; res=$(grep '^RESULT' <<<"$log")
    ir+=("$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' <<<"$log" | tail -n1)")
    fwd+=("$(field forwarded_frames <<<"$res")")
    rtp+=("$(field to_sub_rtp <<<"$res")")
    echo "  Ir=${ir[-1]} forwarded_frames=${fwd[-1]} rtp_to_subscribers=${rtp[-1]}" >> "$CGF"
  done
  callgrind_annotate --inclusive=yes "/tmp/strowger-cg.$$.$b" 2>/dev/null |
    grep -E 'strowger_sfu::Sfu::[a-z_]+ \[' | head -n 12 | sed 's/^/    /' >> "$CGF"
  rm -f /tmp/strowger-cg.$$.*
  local per; per=$(( (ir[1] - ir[0]) / (fwd[1] - fwd[0]) ))
  echo "=> ${r} room(s) x (${p} pub + ${s} sub): $(( ir[1] - ir[0] )) Ir / $(( fwd[1] - fwd[0] )) forwarded packets = ${per} instructions per forwarded packet (SFU only)" | tee -a "$CGF" >&2
  echo >> "$CGF"
}

run_callgrind() {
  command -v valgrind >/dev/null || { echo "valgrind missing: apt-get install -y valgrind" >&2; return 1; }
  CGF=$OUT/callgrind.txt
  { machine; echo "# $(valgrind --version)"; echo; } > "$CGF"
  cg_point 1 1 10 2 6
  cg_point 1 2 20 2 4
  cg_point 10 1 10 1 3
  echo "callgrind results: $CGF" >&2
}

server_stale() {
  [ ! -x target/release/strowger ] && return 0
  [ -n "$(find crates/server crates/sfu web Cargo.lock -path '*/tests' -prune -o -path '*/node_modules' -prune \
           -type f -newer target/release/strowger -print -quit)" ]
}

run_udp() {
  if server_stale; then
    echo "building strowger (release)..." >&2
    cargo build --release -p strowger >&2
  fi
  local data; data=$(mktemp -d)
  local secret; secret=$(head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 40)
  STROWGER_API_KEY=bench STROWGER_API_SECRET=$secret \
    target/release/strowger serve --http-listen 127.0.0.1:18080 --rtc-listen 127.0.0.1:17882 \
    --rtc-public-ip 127.0.0.1 --data-dir "$data" --log warn > "$data/server.log" 2>&1 &
  local spid=$!
  trap "kill $spid 2>/dev/null || true; rm -rf '$data'" EXIT
  for _ in $(seq 1 100); do
    curl -sf http://127.0.0.1:18080/healthz >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf http://127.0.0.1:18080/healthz >/dev/null || { echo "server did not start" >&2; cat "$data/server.log" >&2; return 1; }
  local f=$OUT/udp.txt
  { machine; echo "# server: STROWGER_API_KEY=bench STROWGER_API_SECRET=<random 40 chars> target/release/strowger serve --http-listen 127.0.0.1:18080 --rtc-listen 127.0.0.1:17882 --rtc-public-ip 127.0.0.1 --data-dir \$(mktemp -d) --log warn   (pid $spid)"; echo; } > "$f"
  local common=(--http 127.0.0.1:18080 --api-key bench --server-pid "$spid" --rtc-port 17882 --warmup 3)
  local over=0
  # Small first (fixed cost visible), then the sweep: each room = 2 publishers + 40 subscribers.
  for step in "1 1 4" $(for r in $SWEEP; do echo "$r,2,40"; done); do
    IFS=', ' read -r rooms pubs subs <<<"$step"
    local cmd=("$LG" udp "${common[@]}" --rooms "$rooms" --publishers "$pubs" --subscribers "$subs" --duration "$SECS")
    echo "\$ STROWGER_API_SECRET=<secret> ${cmd[*]}" | tee -a "$f" >&2
    local log; log=$(STROWGER_API_SECRET=$secret "${cmd[@]}" 2>&1 || true)
    echo "$log" | tee -a "$f" >&2
    echo >> "$f"
    kill -0 "$spid" 2>/dev/null || { echo "server died" | tee -a "$f" >&2; tail -20 "$data/server.log" >> "$f"; return 1; }
    local res; res=$(grep '^RESULT' <<<"$log" || true)
    local n_over; n_over=$(field subs_over_1pct <<<"$res")
    if [ -z "$res" ] || [ "${n_over:-1}" != 0 ]; then
      over=$((over + 1))
      [ "$over" -ge 2 ] && break
    fi
    sleep 2
  done
  if grep -qi 'panic\|error' "$data/server.log"; then
    { echo "# server log (errors):"; grep -i 'panic\|error' "$data/server.log" | head -20; } >> "$f"
  fi
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  trap - EXIT
  rm -rf "$data"
  echo "udp results: $f" >&2
}

case "$WHAT" in
  inproc) run_inproc ;;
  callgrind) run_callgrind ;;
  udp) run_udp ;;
  all) run_inproc; run_callgrind; run_udp ;;
  *) echo "usage: $0 [all|inproc|callgrind|udp]" >&2; exit 2 ;;
esac
