#!/usr/bin/env bash
# Two headless baresip 1.0.0 softphones through a SIP server: alice (sends a 440 Hz tone) and bob
# (sends 1000 Hz, auto-answer) register with digest auth, alice calls bob, the call is held 6 s,
# alice hangs up; then the sndfile recordings prove each side RECEIVED the other's tone.
#
#   tests/sip/baresip.sh          (run.sh calls it with the server up; kamailio-check.sh too)
#
# Environment: SIP_TARGET=127.0.0.1:5060, ALICE=alice ALICE_PW=secret BOB=bob BOB_PW=secret,
#   OUT (work/log folder, default a mktemp -d), HOLD_SECS=6, BARESIP_PORTS base (default 5270, or
#   the next block of 50 whose ports are free:
#   alice SIP 5270(+1 TLS), bob 5280(+1), ctrl_tcp 5290/5291; RTP 10000-10099 / 10100-10199).
# Every wait is bounded; both baresip processes are stopped by pid at the end.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
target=${SIP_TARGET:-127.0.0.1:5060}
alice=${ALICE:-alice} alice_pw=${ALICE_PW:-secret}
bob=${BOB:-bob} bob_pw=${BOB_PW:-secret}
hold=${HOLD_SECS:-6}
base=${BARESIP_PORTS:-5270}
out=${OUT:-$(mktemp -d /tmp/strowger-sip-baresip.XXXXXX)}
mkdir -p "$out"
case "${target%:*}" in 127.*) ;; *) echo "baresip: refusing non-loopback target $target" >&2; exit 2 ;; esac
command -v baresip >/dev/null || { echo "baresip: baresip missing (apt-get install baresip-core)"; exit 2; }
tool() { python3 "$here/baresip_tool.py" "$@"; }
# the first block of free ports from $base on (another program may hold one of them)
base=$(tool ports "$base") || { echo "baresip: FAIL no free ports"; exit 1; }

pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill -TERM "$p" 2>/dev/null
  done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
}
trap cleanup EXIT

# conf NAME USER PASSWORD SIP_PORT CTRL_PORT RTP_RANGE TONE_HZ
conf() {
  local name=$1 user=$2 pw=$3 sport=$4 cport=$5 rtp=$6 hz=$7 d=$out/$1
  mkdir -p "$d/rec"
  rm -f "$d"/rec/*.wav
  tool tone "$d/tone.wav" "$hz" 40
  cat >"$d/config" <<CFG
poll_method		epoll
sip_listen		127.0.0.1:$sport
net_interface		127.0.0.1
call_local_timeout	30
call_max_calls		2
audio_player		aubridge,nil
audio_source		aufile,$d/tone.wav
audio_alert		aubridge,nil
audio_level		no
ausrc_format		s16
auplay_format		s16
rtp_ports		$rtp
rtcp_mux		no
jitter_buffer_delay	1-10
module_path		/usr/lib/baresip/modules
module			g711.so
module			aufile.so
module			aubridge.so
module			sndfile.so
snd_path		$d/rec
module_app		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:$cport
CFG
  # one account; registers to the server named in the AOR; bob answers by itself
  echo "<sip:$user@$target;transport=udp>;auth_user=$user;auth_pass=$pw;regint=300;answermode=auto;audio_codecs=PCMU,PCMA" >"$d/accounts"
  : >"$d/contacts"
  : >"$d/current_contact"
}
# baresip also listens on SIP port + 1 (TLS): keep the ports apart
conf alice "$alice" "$alice_pw" "$base" $((base + 20)) 10000-10099 440
conf bob "$bob" "$bob_pw" $((base + 10)) $((base + 21)) 10100-10199 1000

for n in alice bob; do
  timeout 90 baresip -f "$out/$n" -v </dev/null >"$out/$n.log" 2>&1 &
  pids+=($!)
done
echo "baresip: alice pid ${pids[0]}, bob pid ${pids[1]}, server $target, logs $out"

rc=0
tool drive --alice 127.0.0.1:$((base + 20)) --bob 127.0.0.1:$((base + 21)) --dial "sip:$bob@$target" --hold "$hold" \
  >"$out/drive.log" 2>&1 || rc=$?
cat "$out/drive.log"
cleanup
pids=()
if [ $rc != 0 ]; then
  echo "--- alice log tail"; tail -n 15 "$out/alice.log"
  echo "--- bob log tail"; tail -n 15 "$out/bob.log"
  echo "baresip: FAIL $(grep FAIL "$out/drive.log" | head -n 1)"
  exit 1
fi
fail=0
echo "alice received:"; tool check "$out/alice/rec" 1000 --other 440 || fail=1
echo "bob received:"; tool check "$out/bob/rec" 440 --other 1000 || fail=1
if [ $fail = 0 ]; then
  echo "baresip: call ok; alice heard 1000 Hz and bob heard 440 Hz"
else
  echo "baresip: FAIL audio not received as expected (recordings in $out/*/rec)"
fi
exit $fail
