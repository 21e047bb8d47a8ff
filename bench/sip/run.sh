#!/usr/bin/env bash
# Strowger side of bench/sip/README.md: start `strowger serve` with 1000 SIP users, run the SIPp sweeps of the
# shared harness ($B) against it, record /metrics after each step, stop it (by pid). Bounded: every SIPp run has
# -m/-timeout/timeout (harness), the server is stopped on exit.
# Usage: bench/sip/run.sh [STEP...]   steps: reg inv relaycps relay callgrind   (default: reg inv relaycps relay)
# Env: B=/work/shared/bench-peers  BIN=target/release/strowger  PORT=5390 (SIP)  LPORT=5370 (SIPp UAC)  UAS_PORT=5080
#      REG_RATES="1000 2000 5000 8000 10000 12000"  INV_RATES="500 1000 1500 2000 2500 3000"  RELAY_N=500  RELAY_HOLD=60
#      OUT=bench/sip/results  TAG=run (suffix of the result files)  BENCH_NICE=-10 (same nice level as the harness' peers)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
B="${B:-/work/shared/bench-peers}"
BIN="${BIN:-$ROOT/target/release/strowger}"
PORT="${PORT:-5390}"; UAS_PORT="${UAS_PORT:-5080}"; export LPORT="${LPORT:-5370}"
REG_RATES="${REG_RATES:-1000 2000 5000 8000 10000 12000}"
INV_RATES="${INV_RATES:-500 1000 1500 2000 2500 3000}"
RELAY_N="${RELAY_N:-500}"; RELAY_HOLD="${RELAY_HOLD:-60}"
OUT="${OUT:-$ROOT/bench/sip/results}"; TAG="${TAG:-run}"; NICE="${BENCH_NICE:--10}"
STEPS="${*:-reg inv relaycps relay}"
RUN="$(mktemp -d /tmp/strowger-bench-sip.XXXXXX)"; USERS="${USERS_DIR:-/tmp/strowger-bench-sip-users}"
HTTP=127.0.0.1:18095
mkdir -p "$OUT"
export UAS_RUN="$RUN"   # uas.sh pid file/log here
SPID=""

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/log-$TAG.txt"; }
port_free() { ! ss -Hluan "sport = :$1" | grep -q .; }

stop_server() {
  [[ -n "$SPID" ]] || return 0
  kill -TERM "$SPID" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SPID" 2>/dev/null || true; SPID=""
}
cleanup() { "$B/lib/uas.sh" stop "$UAS_PORT" >/dev/null 2>&1 || true; stop_server; }
trap cleanup EXIT

# start_server [extra --set ...]; data dir = a fresh copy of the users' data dir
start_server() {
  port_free "$PORT" || { echo "UDP $PORT busy: $(ss -Hlunp "sport = :$PORT")" >&2; exit 2; }
  rm -rf "$RUN/data"; cp -a "$USERS" "$RUN/data"
  local pre=()
  [[ "${1:-}" == callgrind ]] && { pre=(valgrind --tool=callgrind --callgrind-out-file="$RUN/callgrind.%p"); shift; }
  setsid nice -n "$NICE" "${pre[@]}" "$BIN" serve --set data_dir="$RUN/data" --set sip.listen=127.0.0.1:$PORT \
    --set http.listen=$HTTP --set rtc.listen=127.0.0.1:17895 --set log=warn --set sip.rate_per_sec=0 \
    --set sip.trusted_ips=127.0.0.1 --set sip.default_route=sip:127.0.0.1:$UAS_PORT \
    --set relay.bind=127.0.0.1 --set relay.port_min=40000 --set relay.port_max=49999 "$@" \
    </dev/null >>"$RUN/server.log" 2>&1 &
  SPID=$!
  for _ in $(seq 1 300); do curl -sf "http://$HTTP/metrics" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -sf "http://$HTTP/metrics" >/dev/null || { echo "server did not come up"; tail "$RUN/server.log"; exit 1; }
  log "strowger pid $SPID $* (threads $(ls /proc/$SPID/task | wc -l), RSS $(awk '/VmRSS/{print $2}' /proc/$SPID/status) kB)"
}
metrics() { { echo "# $1 $(date -u +%FT%TZ) pid $SPID"; curl -s "http://$HTTP/metrics" | grep -E '^strowger_(sip|relay)'; } >> "$OUT/metrics-$TAG.txt"; }

# 1000 users u00001..u01000 / p00001..p01000 (the harness' users.csv), once, through the REST API
make_users() {
  [[ -e "$USERS/.bench-users-1000" ]] && return 0
  rm -rf "$USERS"; mkdir -p "$USERS"; local save="$USERS"; USERS=/dev/null
  port_free "$PORT" || { echo "UDP $PORT busy" >&2; exit 2; }
  setsid "$BIN" serve --set data_dir="$save" --set sip.listen=127.0.0.1:$PORT --set http.listen=$HTTP \
    --set rtc.listen=127.0.0.1:17895 --set log=warn </dev/null >>"$RUN/server.log" 2>&1 &
  SPID=$!; for _ in $(seq 1 300); do curl -sf "http://$HTTP/metrics" >/dev/null 2>&1 && break; sleep 0.1; done
  local tok t0; tok=$("$BIN" token create --admin --identity bench --set data_dir="$save" | tail -1); t0=$(date +%s.%N)
  for i in $(seq -f %05g 1 1000); do
    curl -sf -o /dev/null -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
      -d "{\"username\":\"u$i\",\"password\":\"p$i\"}" "http://$HTTP/api/v1/users" || { echo "user u$i failed" >&2; exit 1; }
  done
  log "1000 users created via POST /api/v1/users in $(echo "$(date +%s.%N) - $t0" | bc) s"
  stop_server; USERS="$save"; touch "$USERS/.bench-users-1000"
}

sweep() { # label scenario rates [uas pid]
  log "sweep $1 load1=$(cut -d' ' -f1 /proc/loadavg)"
  WORK="$RUN/sweep-$1" STOP_ON_FAIL=1 "$B/lib/sipp-rate-sweep.sh" -t 127.0.0.1:$PORT -s "$2" -r "$3" -d 12 -p "$SPID" \
     ${4:+-u "$4"} -L "$1" -o "$OUT/$1-$TAG.tsv" | tee -a "$OUT/log-$TAG.txt"
  metrics "$1"
}

log "host $(hostname) nproc $(nproc) cpu '$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)' commit $(git -C "$ROOT" rev-parse --short HEAD) steps: $STEPS"
make_users
for step in $STEPS; do case $step in
  reg)
    start_server
    sweep reg "-sf $B/lib/scenarios/reg-auth.xml -inf $B/lib/scenarios/users.csv" "$REG_RATES"
    stop_server ;;
  inv)   # no media relay: -sn uac carries no SDP; direct_media on as the brief's "without relay" runs
    start_server --set sip.direct_media=true
    "$B/lib/uas.sh" start "$UAS_PORT" -sf "$B/lib/scenarios/uas-no180.xml"
    sweep inv "-sn uac" "$INV_RATES" "$("$B/lib/uas.sh" pid "$UAS_PORT")"
    "$B/lib/uas.sh" stop "$UAS_PORT"; stop_server ;;
  relaycps)   # calls with an SDP offer: the relay allocates 4 ports per call (no RTP sent)
    start_server
    "$B/lib/uas.sh" start "$UAS_PORT" -sf "$B/lib/scenarios/uas-media.xml" -mi 127.0.0.1 -rtp_echo -mp 6000
    sweep relaycps "-sf $ROOT/bench/sip/uac-sdp.xml" "$INV_RATES" "$("$B/lib/uas.sh" pid "$UAS_PORT")"
    "$B/lib/uas.sh" stop "$UAS_PORT"; stop_server ;;
  relay)   # RELAY_N concurrent calls with RTP (100 pps relayed per call), held RELAY_HOLD s
    start_server
    "$B/lib/uas.sh" start "$UAS_PORT" -sf "$B/lib/scenarios/uas-media.xml" -mi 127.0.0.1 -rtp_echo -mp 6000
    log "relay $RELAY_N load1=$(cut -d' ' -f1 /proc/loadavg)"
    WORK="$RUN/relay" "$B/lib/relay-load.sh" -t 127.0.0.1:$PORT -n "$RELAY_N" -d "$RELAY_HOLD" -p "$SPID" -k "$SPID" \
       -m 40000-49999 -L "relay-$RELAY_N" -o "$OUT/relay-$TAG.tsv" | tee -a "$OUT/log-$TAG.txt"
    metrics "relay-$RELAY_N"
    "$B/lib/uas.sh" stop "$UAS_PORT"; stop_server ;;
  callgrind)   # instructions per registration / per call: callgrind_control -z before, -d after a fixed-count run
    for what in reg inv; do
      if [[ $what == inv ]]; then start_server callgrind --set sip.direct_media=true
        "$B/lib/uas.sh" start "$UAS_PORT" -sf "$B/lib/scenarios/uas-no180.xml"; SC="-sn uac"; N=${CG_CALLS:-2000}
      else start_server callgrind; SC="-sf $B/lib/scenarios/reg-auth.xml -inf $B/lib/scenarios/users.csv"; N=${CG_REGS:-4000}; fi
      sleep 2; callgrind_control -z "$SPID" >/dev/null
      # shellcheck disable=SC2086
      timeout 300 sipp 127.0.0.1:$PORT $SC -i 127.0.0.1 -p "$LPORT" -r 100 -m "$N" -timeout 200s -timeout_error -nostdin \
         -trace_stat -stf "$RUN/cg-$what.csv" -fd 1 -buff_size 4194304 >"$RUN/cg-$what.out" 2>&1 || true
      callgrind_control -d "$SPID" >/dev/null; sleep 1
      ir=$(grep -h '^summary:' "$RUN"/callgrind.*.1 | awk '{s+=$2} END{print s}')   # the -d dump: costs since -z
      ok=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++)h[$i]=i; next} {l=$0} END{split(l,f,";"); print f[h["SuccessfulCall(C)"]]+0, f[h["FailedCall(C)"]]+0, f[h["Retransmissions(C)"]]+0}' "$RUN/cg-$what.csv")
      log "callgrind $what: Ir=$ir over $N (ok failed retrans: $ok) => $(echo "$ir / $N" | bc) instructions per $what"
      metrics "callgrind-$what"
      "$B/lib/uas.sh" stop "$UAS_PORT" >/dev/null 2>&1 || true; stop_server; rm -f "$RUN"/callgrind.*
    done ;;
  *) echo "unknown step $step" >&2; exit 2 ;;
esac; done
log "done; server log tail:"; tail -5 "$RUN/server.log" | tee -a "$OUT/log-$TAG.txt"
