#!/usr/bin/env bash
# Kamailio side of bench/sip/README.md, the same sweeps as run.sh with Kamailio (bench/sip/kamailio.sh, 2 UDP workers)
# in place of Strowger. Usage: bench/sip/run-kamailio.sh [STEP...]  steps: reg inv relaycps relay (relay* need rtpengine)
# Env: as run.sh (B, PORT=5390, LPORT=5370, UAS_PORT=5080, REG_RATES, INV_RATES, RELAY_N, RELAY_HOLD, OUT, TAG), WORKERS=2.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
B="${B:-/work/shared/bench-peers}"; export B PORT="${PORT:-5390}"; UAS_PORT="${UAS_PORT:-5080}"; export LPORT="${LPORT:-5370}"
REG_RATES="${REG_RATES:-1000 2000 5000 8000 10000 12000}"; INV_RATES="${INV_RATES:-500 1000 1500 2000 2500 3000}"
RELAY_N="${RELAY_N:-500}"; RELAY_HOLD="${RELAY_HOLD:-60}"; WORKERS="${WORKERS:-2}"
OUT="${OUT:-$ROOT/bench/sip/results}"; TAG="${TAG:-run}"; STEPS="${*:-reg inv}"
RUN="$(mktemp -d /tmp/kamailio-bench-sip.XXXXXX)"; export UAS_RUN="$RUN" KRUN="$RUN/k" KAMAILIO_RUN="$RUN/k"
K="$ROOT/bench/sip/kamailio.sh"; mkdir -p "$OUT"
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/log-kamailio-$TAG.txt"; }
cleanup() { "$B/lib/uas.sh" stop "$UAS_PORT" >/dev/null 2>&1 || true; "$K" stop >/dev/null 2>&1 || true
            [[ -s "$RUN/k/rtpengine.pid" ]] && "$B/kamailio/stop-rtpengine.sh" >/dev/null 2>&1 || true; }
trap cleanup EXIT
counters() { echo "# $1 $(date -u +%FT%TZ)" >> "$OUT/metrics-kamailio-$TAG.txt"
  kamcmd -s "unix:$RUN/k/ctl" stats.get_statistics all 2>/dev/null | grep -E 'registrar:|sl:|tmx:|usrloc:' >> "$OUT/metrics-kamailio-$TAG.txt" || true; }
sweep() { log "sweep kamailio-$1 load1=$(cut -d' ' -f1 /proc/loadavg)"
  WORK="$RUN/sweep-$1" STOP_ON_FAIL=1 "$B/lib/sipp-rate-sweep.sh" -t 127.0.0.1:$PORT -s "$2" -r "$3" -d 12 -p "$("$K" pid)${EXTRA_PIDS:+ $EXTRA_PIDS}" \
     ${4:+-u "$4"} -L "kamailio-$1" -o "$OUT/kamailio-$1-$TAG.tsv" | tee -a "$OUT/log-kamailio-$TAG.txt"; counters "$1"; }
log "nproc $(nproc) cpu '$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)' kamailio $(kamailio -v | head -1) steps: $STEPS"
for step in $STEPS; do case $step in
  reg) "$K" start auth "$WORKERS" | tee -a "$OUT/log-kamailio-$TAG.txt"
       sweep reg "-sf $B/lib/scenarios/reg-auth.xml -inf $B/lib/scenarios/users.csv" "$REG_RATES"; "$K" stop ;;
  inv) "$K" start plain "$WORKERS" | tee -a "$OUT/log-kamailio-$TAG.txt"
       "$B/lib/uas.sh" start "$UAS_PORT" -sf "$B/lib/scenarios/uas-no180.xml"
       sweep inv "-sn uac" "$INV_RATES" "$("$B/lib/uas.sh" pid "$UAS_PORT")"; "$B/lib/uas.sh" stop "$UAS_PORT"; "$K" stop ;;
  relaycps|relay)
       "$B/kamailio/start-rtpengine.sh" | tee -a "$OUT/log-kamailio-$TAG.txt"; "$K" start rtpengine "$WORKERS"
       "$B/lib/uas.sh" start "$UAS_PORT" -sf "$B/lib/scenarios/uas-media.xml" -mi 127.0.0.1 -rtp_echo -mp 6000
       if [[ $step == relaycps ]]; then   # CPU = Kamailio + rtpengine
         EXTRA_PIDS="$(cat "$RUN/k/rtpengine.pid")" sweep relaycps "-sf $ROOT/bench/sip/uac-sdp.xml" "$INV_RATES" "$("$B/lib/uas.sh" pid "$UAS_PORT")"
       else
         log "relay $RELAY_N load1=$(cut -d' ' -f1 /proc/loadavg)"
         WORK="$RUN/relay" "$B/lib/relay-load.sh" -t 127.0.0.1:$PORT -n "$RELAY_N" -d "$RELAY_HOLD" -p "$(cat "$RUN/k/rtpengine.pid")" \
            -k "$("$K" pid)" -c 127.0.0.1:9900 -m 30000-40000 -L "rtpengine-$RELAY_N" -o "$OUT/kamailio-relay-$TAG.tsv" | tee -a "$OUT/log-kamailio-$TAG.txt"
       fi
       "$B/lib/uas.sh" stop "$UAS_PORT"; "$K" stop; "$B/kamailio/stop-rtpengine.sh" ;;
  *) echo "unknown step $step" >&2; exit 2 ;;
esac; done
log done
