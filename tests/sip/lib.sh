# Shared helpers of the SIP tests (sourced by run.sh and kamailio-check.sh; bash).
# Needs: TARGET (host:port of the server under test), SCEN (tests/sipp), LOGS (log folder).
# Ports (all on 127.0.0.1) may be overridden from the environment.
CALLER_PORT=${CALLER_PORT:-5170}
CALLEE_PORT=${CALLEE_PORT:-5180}
CALLER_MEDIA=${CALLER_MEDIA:-16300}
CALLEE_MEDIA=${CALLEE_MEDIA:-16200}
SIPP_TIMEOUT=${SIPP_TIMEOUT:-20}   # seconds a single SIPp run may take (its -timeout; `timeout` adds 10)

HERE_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
n_pass=0
n_fail=0
failed_names=()
CALLEE_PID=

pass() { n_pass=$((n_pass + 1)); printf 'PASS  %-28s %s\n' "$1" "${2:-}"; }
fail() { n_fail=$((n_fail + 1)); failed_names+=("$1"); printf 'FAIL  %-28s %s\n' "$1" "${2:-}"; }

# Why a SIPp run failed, in one line: the first error it logged, or its last screen line.
sipp_reason() {
  local name=$1 rc=$2 line=
  [ "$rc" = 124 ] && { echo "SIPp did not finish in time (killed by timeout)"; return; }
  if [ -s "$LOGS/$name.err" ]; then
    # the decisive event first (abort, unexpected message, timeout), else the first one logged
    line=$(grep -aE 'Aborting|unexpected|[Tt]imeout|check_it|[Rr]egexp|Could not|Unable|refused' "$LOGS/$name.err" | head -n 1)
    [ -n "$line" ] || line=$(grep -av '^[[:space:]]*$' "$LOGS/$name.err" | grep -avE '^-+$' | head -n 2 | tr '\n' ' ')
    line=$(printf '%s' "$line" | sed -E 's/^.*[0-9]{10}\.[0-9]+: //')
  fi
  [ -n "$line" ] || line=$(grep -E 'Failed call|Unexpected|Aborting|error' "$LOGS/$name.out" 2>/dev/null | tail -n 1)
  local what="sipp exit $rc"
  [ "$rc" = 255 ] && what="sipp exit 255 (fatal error, or its -timeout ${SIPP_TIMEOUT}s ran out)"
  echo "$what: ${line:-see $LOGS/$name.*} (logs $LOGS/$name.*)" | cut -c1-400
}

# sipp_fg NAME ARGS...: one SIPp run in the foreground, bounded, with its error and message traces.
sipp_fg() {
  local name=$1
  shift
  local rc=0
  timeout --kill-after=5 $((SIPP_TIMEOUT + 10)) sipp "$TARGET" -i 127.0.0.1 -nostdin -timeout "${SIPP_TIMEOUT}s" \
    -timeout_error -trace_err -error_file "$LOGS/$name.err" -trace_msg -message_file "$LOGS/$name.msg" \
    -trace_screen -screen_file "$LOGS/$name.screen" "$@" >"$LOGS/$name.out" 2>&1 </dev/null || rc=$?
  return $rc
}

# callee_start NAME USER PASSWORD OOC_SCENARIO HOLD_MS [extra sipp args]: a SIPp callee in the
# background that REGISTERs USER and answers calls with OOC_SCENARIO for HOLD_MS; returns once the
# REGISTER got its 200 (bounded: 10 s), non-zero if it did not.
callee_start() {
  local name=$1 user=$2 pw=$3 ooc=$4 hold=$5
  shift 5
  local limit=$((hold / 1000 + 20))
  : >"$LOGS/$name.msg"
  timeout --kill-after=5 "$limit" sipp "$TARGET" -i 127.0.0.1 -p "$CALLEE_PORT" -nostdin -m 1 -timeout "$((limit - 2))s" \
    -sf "$SCEN/uas-register.xml" -oocsf "$SCEN/$ooc" -s "$user" -set pw "$pw" -d "$hold" \
    -rtp_echo -mi 127.0.0.1 -mp "$CALLEE_MEDIA" \
    -trace_err -error_file "$LOGS/$name.err" -trace_msg -message_file "$LOGS/$name.msg" \
    -trace_screen -screen_file "$LOGS/$name.screen" "$@" >"$LOGS/$name.out" 2>&1 </dev/null &
  CALLEE_PID=$!
  local i
  for i in $(seq 1 100); do
    # the 200 OK for the REGISTER (the last REGISTER response before any call)
    if grep -q '^SIP/2.0 200' "$LOGS/$name.msg" 2>/dev/null; then return 0; fi
    kill -0 "$CALLEE_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# callee_wait: wait for the background callee (bounded by its own timeout) and return its status.
callee_wait() {
  local rc=0
  [ -n "$CALLEE_PID" ] || return 0
  wait "$CALLEE_PID" || rc=$?
  CALLEE_PID=
  return $rc
}

callee_stop() {
  if [ -n "$CALLEE_PID" ] && kill -0 "$CALLEE_PID" 2>/dev/null; then
    pkill -TERM -P "$CALLEE_PID" 2>/dev/null
    kill -TERM "$CALLEE_PID" 2>/dev/null
    wait "$CALLEE_PID" 2>/dev/null
  fi
  CALLEE_PID=
}

# What the callee must have seen (sipflow.py items), per out-of-call variant: SIPp's exit status
# does not count failed out-of-call scenarios, so the callee's side is checked from its message log.
FLOW_ANSWER='<INVITE >180 >200 <ACK <BYE >200'
FLOW_HOLD='<INVITE >180 >200 <ACK <INVITE/a=sendonly >200/a=recvonly <ACK <INVITE/a=sendrecv >200/a=sendrecv <ACK <BYE >200'
FLOW_ANSWER_BYE='<INVITE >180 >200 <ACK >BYE <200'
FLOW_BUSY='<INVITE >486 <ACK'
FLOW_RING='<INVITE >180 <CANCEL >200 >487 <ACK'

# call_test NAME CALLEE OOC HOLD_MS UAC_SCENARIO "CALLEE_FLOW" [extra caller args]: the callee
# registers and answers with OOC for HOLD_MS, the caller (user $CALLER / $CALLER_PW) runs
# UAC_SCENARIO against CALLEE. PASS when both SIPp runs exit 0 and the callee's message log shows
# CALLEE_FLOW (sipflow.py).
call_test() {
  local name=$1 callee=$2 ooc=$3 hold=$4 uac=$5 want_flow=$6
  shift 6
  local rc=0 crc=0 why
  if ! callee_start "$name-callee" "$callee" "$CALLEE_PW" "$ooc" "$hold"; then
    callee_stop
    fail "$name" "callee $callee did not register: $(sipp_reason "$name-callee" 1)"
    return 1
  fi
  sipp_fg "$name" -p "$CALLER_PORT" -m 1 -sf "$SCEN/$uac" -s "$callee" -set caller "$CALLER" -set pw "$CALLER_PW" \
    -mi 127.0.0.1 -mp "$CALLER_MEDIA" "$@" || rc=$?
  callee_wait || crc=$?
  if [ $rc != 0 ]; then
    fail "$name" "caller: $(sipp_reason "$name" $rc)"
    return 1
  elif [ $crc != 0 ]; then
    fail "$name" "callee: $(sipp_reason "$name-callee" $crc)"
    return 1
  fi
  # shellcheck disable=SC2086
  if ! why=$(python3 "$HERE_LIB/sipflow.py" "$LOGS/$name-callee.msg" $want_flow); then
    fail "$name" "callee side: $why"
    return 1
  fi
  pass "$name" "caller ok; callee saw ${want_flow// / }"
}

# Capture RTP on lo (background) for rtpcheck.py; stop with capture_stop.
CAP_PID=
capture_start() {
  CAP_FILE=$1
  shift
  command -v tcpdump >/dev/null || { CAP_PID=; return 1; }
  timeout 120 tcpdump -i lo -n -U -s 256 -w "$CAP_FILE" "udp and ($*)" >"$CAP_FILE.log" 2>&1 &
  CAP_PID=$!
  local i
  for i in $(seq 1 30); do grep -q 'listening on' "$CAP_FILE.log" 2>/dev/null && return 0; sleep 0.1; done
  return 0
}
capture_stop() {
  [ -n "$CAP_PID" ] || return 0
  sleep 0.5
  kill -TERM "$CAP_PID" 2>/dev/null
  wait "$CAP_PID" 2>/dev/null
  CAP_PID=
}

summary() {
  echo "sip: $n_pass passed, $n_fail failed${failed_names:+ (${failed_names[*]})}"
  [ "$n_fail" = 0 ]
}
