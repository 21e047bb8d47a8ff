#!/usr/bin/env bash
# Validates the SIP test scenarios against Kamailio 5.6 (a known-good registrar + stateful proxy),
# so that a failure against Strowger points at Strowger, not at the scenarios.
#
#   tests/sip/kamailio-check.sh [all|sipp|negative|malformed|baresip]   (negative needs sipp's call.pcap: run all)      (needs kamailio, sipp, tcpdump; baresip-core for baresip)
#
# Kamailio runs the bench config of the bench-peers harness (BENCH_PEERS, default
# /work/shared/bench-peers: kamailio/kamailio-bench.cfg with WITH_AUTH over its db_text users
# u00001..u01000 / p00001..p01000) on udp 127.0.0.1:$KAM_PORT (default 5090, so it never meets a
# Strowger on 5060), started here in the foreground process group and stopped by pid at the end.
# Differences from Strowger that the scenarios tolerate: Kamailio does not challenge INVITEs (the
# 407 branch is optional), does not relay media (rtpcheck.py --expect direct), answers an unanswered
# call 408 after fr_inv_timer (30 s), and has no 404/480 for unknown/offline users (not run here).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
what=${1:-all}
BENCH_PEERS=${BENCH_PEERS:-/work/shared/bench-peers}
KAM_PORT=${KAM_PORT:-5090}
TARGET=127.0.0.1:$KAM_PORT
SCEN=$root/tests/sipp
LOGS=${LOGS:-$(mktemp -d /tmp/strowger-sip-kamailio.XXXXXX)}
mkdir -p "$LOGS"
source "$here/lib.sh"
CALLER=u00001 CALLER_PW=p00001 CALLEE_PW=p00002

for c in kamailio sipp; do command -v $c >/dev/null || { echo "kamailio-check: $c missing" >&2; exit 2; }; done
if ss -Hlun "sport = :$KAM_PORT" | grep -q .; then echo "kamailio-check: udp port $KAM_PORT busy" >&2; exit 2; fi

cfg=$LOGS/kamailio.cfg
# the bench config with TCP switched on (same address), for the TCP REGISTER and the TCP corpus
sed -e "s|@DBTEXT_DIR@|$BENCH_PEERS/kamailio/dbtext|g" -e "s|^disable_tcp=yes|disable_tcp=no\nlisten=tcp:127.0.0.1:$KAM_PORT|" \
  "$BENCH_PEERS/kamailio/kamailio-bench.cfg" >"$cfg"
kamailio -DD -E -f "$cfg" -P "$LOGS/kamailio.pid" -m 128 -M 16 -A WITH_AUTH -A WORKERS=2 \
  -A "LISTEN_ADDR=udp:127.0.0.1:$KAM_PORT" </dev/null >"$LOGS/kamailio.log" 2>&1 &
kpid=$!
cleanup() {
  callee_stop
  capture_stop
  if kill -0 "$kpid" 2>/dev/null; then
    kill -TERM "$kpid"
    for _ in $(seq 1 50); do kill -0 "$kpid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$kpid" 2>/dev/null
  fi
  wait "$kpid" 2>/dev/null
}
trap cleanup EXIT
for _ in $(seq 1 50); do ss -Hlun "sport = :$KAM_PORT" | grep -q . && break; sleep 0.1; done
kill -0 "$kpid" 2>/dev/null || { echo "kamailio did not start:"; tail "$LOGS/kamailio.log"; exit 1; }
echo "kamailio-check: kamailio pid $kpid on $TARGET, logs $LOGS"

if [ "$what" = all ] || [ "$what" = sipp ]; then
  if sipp_fg reg-auth -p "$CALLER_PORT" -m 1 -sf "$SCEN/reg-auth.xml" -inf "$SCEN/kamailio-users.csv"; then
    pass reg-auth "401, 200 with Contact;expires, unREGISTER 200"
  else fail reg-auth "$(sipp_reason reg-auth $?)"; fi
  if sipp_fg reg-tcp -p "$CALLER_PORT" -m 1 -t t1 -sf "$SCEN/reg-auth.xml" -inf "$SCEN/kamailio-users.csv"; then
    pass reg-tcp "over TCP: 401, 200 with Contact;expires, unREGISTER 200"
  else fail reg-tcp "$(sipp_reason reg-tcp $?)"; fi
  if sipp_fg reg-badpass -p "$CALLER_PORT" -m 1 -sf "$SCEN/reg-badpass.xml" -inf "$SCEN/kamailio-badpass.csv"; then
    pass reg-badpass "wrong password not accepted"
  else fail reg-badpass "$(sipp_reason reg-badpass $?)"; fi

  capture_start "$LOGS/call.pcap" "port $CALLER_MEDIA or port $CALLEE_MEDIA"
  call_test call u00002 uas-answer.xml 12000 uac-call.xml "$FLOW_ANSWER"
  capture_stop
  if python3 "$here/rtpcheck.py" --expect direct --pcap "$LOGS/call.pcap" --caller-msg "$LOGS/call.msg" \
    --callee-msg "$LOGS/call-callee.msg" --caller-port "$CALLER_MEDIA" --callee-port "$CALLEE_MEDIA" >"$LOGS/rtpcheck.txt" 2>&1; then
    pass rtp-direct "$(grep -c '  ok' "$LOGS/rtpcheck.txt") checks (media end to end through a proxy)"
  else fail rtp-direct "$(grep FAIL "$LOGS/rtpcheck.txt" | head -n 3 | tr '\n' ';')"; fi
  sed 's/^/    /' "$LOGS/rtpcheck.txt"

  call_test call-tcp u00002 uas-answer.xml 12000 uac-call.xml "$FLOW_ANSWER" -t t1
  call_test hold u00002 uas-answer.xml 12000 uac-hold.xml "$FLOW_HOLD"
  call_test bye-from-callee u00002 uas-answer-bye.xml 10000 uac-bye-from-callee.xml "$FLOW_ANSWER_BYE"
  call_test busy u00002 uas-busy.xml 4000 uac-busy.xml "$FLOW_BUSY"
  call_test cancel u00002 uas-ring.xml 5000 uac-cancel.xml "$FLOW_RING"
  [ "${SKIP_SLOW:-0}" = 1 ] || SIPP_TIMEOUT=45 call_test noanswer u00002 uas-ring.xml 36000 uac-noanswer.xml "$FLOW_RING"
fi

if [ "$what" = all ] || [ "$what" = negative ]; then
  # the checks must be able to fail: each of these runs a deliberately wrong pairing
  neg() {
    local name=$1
    shift
    if ("$@") >"$LOGS/$name.neg.txt" 2>&1; then fail "$name" "a wrong flow passed: $(tail -n 1 "$LOGS/$name.neg.txt")"
    else pass "$name" "detected: $(grep -E '^ *FAIL' "$LOGS/$name.neg.txt" | head -n 1 | sed 's/^ *FAIL *//' | cut -c1-200)"; fi
  }
  neg_sipp() { local n=$1 rc=0; shift; sipp_fg "$n" "$@" || rc=$?; [ $rc = 0 ] || echo "FAIL $(sipp_reason "$n" $rc)"; return $rc; }
  neg neg-badpass-right-pw neg_sipp neg1 -p "$CALLER_PORT" -m 1 -sf "$SCEN/reg-badpass.xml" -inf "$SCEN/kamailio-users.csv"
  neg neg-busy-but-answered call_test neg2 u00002 uas-answer.xml 8000 uac-busy.xml "$FLOW_BUSY"
  neg neg-cancel-but-busy call_test neg3 u00002 uas-busy.xml 4000 uac-cancel.xml "$FLOW_RING"
  neg neg-callee-flow call_test neg4 u00002 uas-busy.xml 4000 uac-busy.xml "$FLOW_RING"
  neg neg-relay-on-direct-media python3 "$here/rtpcheck.py" --expect relay --pcap "$LOGS/call.pcap" --caller-msg "$LOGS/call.msg" \
    --callee-msg "$LOGS/call-callee.msg" --caller-port "$CALLER_MEDIA" --callee-port "$CALLEE_MEDIA"
fi

if [ "$what" = all ] || [ "$what" = malformed ]; then
  # informational: Kamailio's own policy differs from Strowger's contract (no 420/416 checks,
  # its own limits); this only shows the sender works and the corpus does not kill a real server.
  python3 "$here/send-malformed.py" --target "$TARGET" --transport udp,tcp -v >"$LOGS/malformed.txt" 2>&1
  sed 's/^/    /' "$LOGS/malformed.txt"
  if grep -q 'ok    udp: OPTIONS after the corpus' "$LOGS/malformed.txt" && grep -q 'ok    tcp: OPTIONS after the corpus' "$LOGS/malformed.txt" \
    && kill -0 "$kpid" 2>/dev/null; then
    pass malformed-alive "kamailio still answers OPTIONS after the corpus"
  else fail malformed-alive "see $LOGS/malformed.txt"; fi
fi

if [ "$what" = all ] || [ "$what" = baresip ]; then
  if SIP_TARGET=$TARGET ALICE=u00001 ALICE_PW=p00001 BOB=u00002 BOB_PW=p00002 \
    OUT=$LOGS/baresip bash "$here/baresip.sh"; then pass baresip "alice -> bob, each side heard the other's tone"
  else fail baresip "see $LOGS/baresip"; fi
fi
summary
