#!/usr/bin/env bash
# Start/stop Kamailio with the shared harness' config template ($B/kamailio/kamailio-bench.cfg) on a port other than
# 5060 (the harness' start-kamailio.sh always listens on 5060, which other people use on this machine): the same
# command line as $B/kamailio/start-kamailio.sh plus -A LISTEN_ADDR=udp:127.0.0.1:$PORT, and private RPC socket paths.
# Usage: bench/sip/kamailio.sh start [plain|auth|rtpengine] [WORKERS=2]  |  bench/sip/kamailio.sh stop  |  pid
# Env: B=/work/shared/bench-peers  PORT=5390  KRUN=/tmp/bench-sip-kamailio (pid, log, generated cfg)  BENCH_NICE=-10
set -euo pipefail
B="${B:-/work/shared/bench-peers}"; PORT="${PORT:-5390}"; KRUN="${KRUN:-/tmp/bench-sip-kamailio}"
CMD="${1:-start}"; MODE="${2:-plain}"; WORKERS="${3:-2}"
mkdir -p "$KRUN"; PIDF="$KRUN/kamailio.pid"
case "$CMD" in
pid) cat "$PIDF" ;;
stop)
  [[ -s "$PIDF" ]] || exit 0; P=$(cat "$PIDF"); kill -TERM "$P" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$P" 2>/dev/null || break; sleep 0.1; done
  rm -f "$PIDF"; echo "kamailio $P stopped" ;;
start)
  if [[ -s "$PIDF" ]] && kill -0 "$(cat "$PIDF")" 2>/dev/null; then echo "already running $(cat "$PIDF")" >&2; exit 1; fi
  if ss -Hluan "sport = :$PORT" | grep -q .; then echo "UDP $PORT busy: $(ss -Hlunp "sport = :$PORT")" >&2; exit 2; fi
  DEFS=(-A "WORKERS=$WORKERS" -A "LISTEN_ADDR=udp:127.0.0.1:$PORT")
  case "$MODE" in plain) ;; auth) DEFS+=(-A WITH_AUTH) ;; rtpengine) DEFS+=(-A WITH_RTPENGINE) ;; *) exit 2 ;; esac
  sed -e "s|@DBTEXT_DIR@|$B/kamailio/dbtext|g" -e "s|/tmp/kamailio_bench_rpc.fifo|$KRUN/rpc.fifo|" \
      -e "s|unix:/tmp/kamailio_bench_ctl|unix:$KRUN/ctl|" "$B/kamailio/kamailio-bench.cfg" > "$KRUN/kamailio.cfg"
  setsid nice -n "${BENCH_NICE:--10}" kamailio -DD -E -f "$KRUN/kamailio.cfg" -P "$KRUN/kamailio.pid.self" -m 1024 -M 32 \
     "${DEFS[@]}" </dev/null >"$KRUN/kamailio.log" 2>&1 &
  K=$!; echo "$K" > "$PIDF"
  for _ in $(seq 1 50); do sleep 0.1; kill -0 "$K" 2>/dev/null || { tail -20 "$KRUN/kamailio.log"; exit 1; }
    ss -Hluan "sport = :$PORT" | grep -q . && break; done
  sleep 0.5; echo "kamailio mode=$MODE workers=$WORKERS port=$PORT pid=$K children=$(pgrep -P "$K" | wc -l)" ;;
*) sed -n 2,7p "$0" >&2; exit 2 ;;
esac
