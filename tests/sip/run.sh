#!/usr/bin/env bash
# Real-peer SIP suite: the release server against SIPp (registrar, B2BUA call flows, RTP relay),
# a malformed-message corpus, and two baresip softphones.
#
#   tests/sip/run.sh [TEST ...]     (default: every test; names as printed, e.g. call hold malformed)
#
# The server runs on 127.0.0.1 only: SIP udp+tcp $SIP_PORT, HTTP $HTTP_PORT, with users alice, bob
# and carol (password `secret`) created by `strowger user add` in a fresh data dir. Each SIPp run is
# bounded (-m, -timeout, `timeout`); a callee SIPp registers bob and answers the B2BUA's INVITE with
# an out-of-call scenario (see tests/sip/README.md). PASS/FAIL is printed per test with the reason;
# the exit status is non-zero when any test failed.
#
# Environment (all optional):
#   STROWGER_BIN   server binary (default target/release/strowger)
#   SIP_PORT=5060 HTTP_PORT=18080 RTC_PORT=17882 RELAY_PORT_MIN=30000 RELAY_PORT_MAX=30999
#   SIP_EXTRA_SETS extra `--set k=v` words for serve (space separated)
#   SIP_READY_TIMEOUT=30 (seconds for /readyz)   SIP_LOGS (log folder, default tests/sip/out)
#   SIP_SKIP_BARESIP=1   skip the baresip test;  SIP_LOG_LINES=80 server log lines shown on failure
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

# ---- the server contract: adjust here when the option names change ----
SIP_PORT=${SIP_PORT:-5060}
HTTP_PORT=${HTTP_PORT:-18080}
RTC_PORT=${RTC_PORT:-17882}
RELAY_PORT_MIN=${RELAY_PORT_MIN:-30000}
RELAY_PORT_MAX=${RELAY_PORT_MAX:-30999}
NO_ANSWER_SECS=5
USERS=(alice bob carol)
USER_PW=secret
server_sets=(
  "sip.listen=127.0.0.1:$SIP_PORT"
  "sip.no_answer_timeout_secs=$NO_ANSWER_SECS"
  "relay.port_min=$RELAY_PORT_MIN"
  "relay.port_max=$RELAY_PORT_MAX"
  "http.listen=127.0.0.1:$HTTP_PORT"
  "rtc.listen=127.0.0.1:$RTC_PORT"
)
# shellcheck disable=SC2206
[ -n "${SIP_EXTRA_SETS:-}" ] && server_sets+=($SIP_EXTRA_SETS)
# -----------------------------------------------------------------------

bin=${STROWGER_BIN:-$root/target/release/strowger}
TARGET=127.0.0.1:$SIP_PORT
SCEN=$root/tests/sipp
LOGS=${SIP_LOGS:-$here/out}
mkdir -p "$LOGS"
rm -f "$LOGS"/*.{out,err,msg,screen,pcap,log,txt} 2>/dev/null
rm -rf "$LOGS/baresip"
source "$here/lib.sh"
CALLER=alice CALLER_PW=$USER_PW CALLEE_PW=$USER_PW

die() { echo "sip: $*" >&2; exit 2; }
[ -x "$bin" ] || die "no server binary at $bin (cargo build --release, or set STROWGER_BIN)"
command -v sipp >/dev/null || die "sipp missing (apt-get install sip-tester)"
command -v python3 >/dev/null || die "python3 missing"
for p in $SIP_PORT $CALLER_PORT $CALLEE_PORT; do
  ss -Hlun "sport = :$p" | grep -q . && die "udp port $p is busy"
done
ss -Hltn "sport = :$SIP_PORT" | grep -q . && die "tcp port $SIP_PORT is busy"
ss -Hltn "sport = :$HTTP_PORT" | grep -q . && die "tcp port $HTTP_PORT is busy"

selected=("$@")
want() { [ ${#selected[@]} = 0 ] || [[ " ${selected[*]} " == *" $1 "* ]]; }

data=$(mktemp -d /tmp/strowger-sip-data.XXXXXX)
log=$LOGS/server.log
server_pid=
cleanup() {
  set +e
  callee_stop
  capture_stop
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$server_pid" 2>/dev/null; then
      echo "sip: server did not stop within 5 s of SIGTERM; killing it" >&2
      kill -KILL "$server_pid"
    fi
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sets=()
for s in "${server_sets[@]}"; do sets+=(--set "$s"); done

: >"$log"
for u in "${USERS[@]}"; do
  if ! timeout 30 "$bin" user add "$u" --password "$USER_PW" --set "data_dir=$data" >>"$log" 2>&1; then
    echo "sip: \`strowger user add $u --password … --set data_dir=$data\` failed:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
done

echo "sip: server $bin, SIP udp+tcp $TARGET, HTTP 127.0.0.1:$HTTP_PORT, logs $LOGS"
STROWGER_LOG=${STROWGER_LOG:-info} NO_COLOR=1 "$bin" serve --set "data_dir=$data" "${sets[@]}" >>"$log" 2>&1 &
server_pid=$!

ready_timeout=${SIP_READY_TIMEOUT:-30}
deadline=$((SECONDS + ready_timeout))
until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$HTTP_PORT/readyz" 2>/dev/null; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    wait "$server_pid"
    echo "sip: server exited (status $?) before it was ready:" >&2
    tail -n "${SIP_LOG_LINES:-80}" "$log" >&2
    server_pid=
    exit 1
  fi
  if [ $SECONDS -ge $deadline ]; then
    echo "sip: server not ready within ${ready_timeout}s (GET /readyz)" >&2
    tail -n "${SIP_LOG_LINES:-80}" "$log" >&2
    exit 1
  fi
  sleep 0.2
done
# the SIP socket may come up just after HTTP: wait (bounded) until it is bound
for _ in $(seq 1 50); do ss -Hlun "sport = :$SIP_PORT" | grep -q . && break; sleep 0.1; done
echo "sip: server ready (pid $server_pid)"

# reg NAME [sipp args]: REGISTER alice with digest auth
reg() {
  local name=$1 rc=0
  shift
  sipp_fg "$name" -p "$CALLER_PORT" -m 1 -sf "$SCEN/reg-auth.xml" -inf "$SCEN/users.csv" "$@" || rc=$?
  if [ $rc = 0 ]; then pass "$name" "401 challenge, 200 with Contact;expires, unREGISTER 200"
  else fail "$name" "$(sipp_reason "$name" $rc)"; fi
}

# caller_only NAME UAC_SCENARIO CALLEE: a call with no callee SIPp (unknown / offline users)
caller_only() {
  local name=$1 uac=$2 callee=$3 what=$4 rc=0
  sipp_fg "$name" -p "$CALLER_PORT" -m 1 -sf "$SCEN/$uac" -s "$callee" -set caller "$CALLER" -set pw "$CALLER_PW" \
    -mi 127.0.0.1 -mp "$CALLER_MEDIA" || rc=$?
  if [ $rc = 0 ]; then pass "$name" "$what"; else fail "$name" "$(sipp_reason "$name" $rc)"; fi
}

# call_with_rtp NAME: the basic call, with a loopback capture proving RTP went through the relay
call_with_rtp() {
  local name=$1
  if ! command -v tcpdump >/dev/null; then
    call_test "$name" bob uas-answer.xml 10000 uac-call.xml "$FLOW_ANSWER"
    fail "$name-rtp" "tcpdump missing (apt-get install tcpdump): RTP path not checked"
    return
  fi
  capture_start "$LOGS/$name.pcap" "port $CALLER_MEDIA or port $CALLEE_MEDIA"
  call_test "$name" bob uas-answer.xml 10000 uac-call.xml "$FLOW_ANSWER"
  capture_stop
  if python3 "$here/rtpcheck.py" --expect relay --pcap "$LOGS/$name.pcap" --caller-msg "$LOGS/$name.msg" \
    --callee-msg "$LOGS/$name-callee.msg" --caller-port "$CALLER_MEDIA" --callee-port "$CALLEE_MEDIA" \
    >"$LOGS/$name-rtpcheck.txt" 2>&1; then
    pass "$name-rtp" "relayed both ways: $(grep -E 'caller payloads' "$LOGS/$name-rtpcheck.txt" | sed 's/^ *ok *//')"
  else
    fail "$name-rtp" "$(grep -E 'FAIL' "$LOGS/$name-rtpcheck.txt" | head -n 3 | sed 's/^ *FAIL *//' | tr '\n' ';')"
    sed 's/^/      /' "$LOGS/$name-rtpcheck.txt"
  fi
}

# fork NAME: bob registered from two phones; one rings forever, the other answers. The B2BUA rings
# both at once (parallel forking), the answer wins, the ringing phone gets CANCEL.
fork_test() {
  local name=$1 rc=0 rrc=0 arc=0 why ring_pid
  local port0=$CALLEE_PORT media0=$CALLEE_MEDIA
  CALLEE_PORT=$((port0 + 3)) CALLEE_MEDIA=$((media0 + 20))
  if ! callee_start "$name-ringing" bob "$CALLEE_PW" uas-ring.xml 6000; then
    callee_stop
    CALLEE_PORT=$port0 CALLEE_MEDIA=$media0
    fail "$name" "ringing phone did not register: $(sipp_reason "$name-ringing" 1)"
    return 1
  fi
  ring_pid=$CALLEE_PID
  CALLEE_PID=
  CALLEE_PORT=$port0 CALLEE_MEDIA=$media0
  if ! callee_start "$name-answering" bob "$CALLEE_PW" uas-answer.xml 6000; then
    callee_stop
    kill -TERM "$ring_pid" 2>/dev/null
    wait "$ring_pid" 2>/dev/null
    fail "$name" "answering phone did not register: $(sipp_reason "$name-answering" 1)"
    return 1
  fi
  sipp_fg "$name" -p "$CALLER_PORT" -m 1 -sf "$SCEN/uac-call.xml" -s bob -set caller "$CALLER" \
    -set pw "$CALLER_PW" -mi 127.0.0.1 -mp "$CALLER_MEDIA" || rc=$?
  callee_wait || arc=$?
  wait "$ring_pid" || rrc=$?
  if [ $rc != 0 ]; then fail "$name" "caller: $(sipp_reason "$name" $rc)"; return 1; fi
  if [ $arc != 0 ]; then fail "$name" "answering phone: $(sipp_reason "$name-answering" $arc)"; return 1; fi
  if [ $rrc != 0 ]; then fail "$name" "ringing phone: $(sipp_reason "$name-ringing" $rrc)"; return 1; fi
  # shellcheck disable=SC2086
  if ! why=$(python3 "$HERE_LIB/sipflow.py" "$LOGS/$name-answering.msg" $FLOW_ANSWER); then
    fail "$name" "answering phone: $why"; return 1
  fi
  # shellcheck disable=SC2086
  if ! why=$(python3 "$HERE_LIB/sipflow.py" "$LOGS/$name-ringing.msg" $FLOW_RING); then
    fail "$name" "ringing phone: $why"; return 1
  fi
  pass "$name" "both phones rang; the answer won, the other got CANCEL/487"
}

want reg-udp && reg reg-udp
want reg-tcp && reg reg-tcp -t t1
if want reg-badpass; then
  rc=0
  sipp_fg reg-badpass -p "$CALLER_PORT" -m 1 -sf "$SCEN/reg-badpass.xml" -inf "$SCEN/badpass.csv" || rc=$?
  if [ $rc = 0 ]; then pass reg-badpass "wrong password: 403/401, never 200"
  else fail reg-badpass "$(sipp_reason reg-badpass $rc)"; fi
fi
want call && call_with_rtp call
want call-tcp && call_test call-tcp bob uas-answer.xml 10000 uac-call.xml "$FLOW_ANSWER" -t t1
want hold && call_test hold bob uas-answer.xml 10000 uac-hold.xml "$FLOW_HOLD"
want bye-from-callee && call_test bye-from-callee bob uas-answer-bye.xml 8000 uac-bye-from-callee.xml "$FLOW_ANSWER_BYE"
want fork && fork_test fork
want busy && call_test busy bob uas-busy.xml 3000 uac-busy.xml "$FLOW_BUSY"
want cancel && call_test cancel bob uas-ring.xml 4000 uac-cancel.xml "$FLOW_RING"
want noanswer && call_test noanswer bob uas-ring.xml $(((NO_ANSWER_SECS + 4) * 1000)) uac-noanswer.xml "$FLOW_RING"
want unknown && caller_only unknown uac-unknown.xml nobody "unknown user: 404"
want offline && caller_only offline uac-offline.xml carol "known user, not registered: 480"

if want malformed; then
  if python3 "$here/send-malformed.py" --target "$TARGET" --transport udp,tcp -v >"$LOGS/malformed.txt" 2>&1; then
    pass malformed "$(tail -n 1 "$LOGS/malformed.txt")"
  else
    fail malformed "$(grep -c '^FAIL' "$LOGS/malformed.txt") bad outcomes (all in $LOGS/malformed.txt):"
    grep '^FAIL' "$LOGS/malformed.txt" | head -n 40 | sed 's/^/      /'
  fi
  if kill -0 "$server_pid" 2>/dev/null; then
    reg reg-after-malformed
    call_test call-after-malformed bob uas-answer.xml 10000 uac-call.xml "$FLOW_ANSWER"
  else
    fail malformed-alive "the server died during the malformed corpus"
  fi
fi

if want baresip; then
  if [ "${SIP_SKIP_BARESIP:-0}" = 1 ]; then
    echo "SKIP  baresip                      (SIP_SKIP_BARESIP=1)"
  elif ! command -v baresip >/dev/null; then
    fail baresip "baresip missing (apt-get install baresip-core)"
  elif SIP_TARGET=$TARGET ALICE=alice ALICE_PW=$USER_PW BOB=bob BOB_PW=$USER_PW \
    OUT=$LOGS/baresip timeout 120 bash "$here/baresip.sh" >"$LOGS/baresip.txt" 2>&1; then
    pass baresip "$(tail -n 1 "$LOGS/baresip.txt")"
  else
    fail baresip "$(tail -n 1 "$LOGS/baresip.txt") (log $LOGS/baresip.txt)"
    tail -n 15 "$LOGS/baresip.txt" | sed 's/^/      /'
  fi
fi

if ! kill -0 "$server_pid" 2>/dev/null; then
  fail server-alive "the server died during the tests"
  server_pid=
fi
panics=$(grep -c 'panicked' "$log" || true)
if [ "$panics" != 0 ]; then
  fail server-panics "$panics panics in $log"
  grep -A3 'panicked' "$log" | head -n 20 | sed 's/^/      /'
fi
echo "sip: server log: $(wc -l <"$log") lines, $panics panics ($log)"
if [ "$n_fail" != 0 ]; then
  echo "---- server log tail ($log) ----"
  tail -n "${SIP_LOG_LINES:-80}" "$log"
  echo "---- end of server log ----"
fi
summary
