#!/bin/bash
B=/work/shared/bench-peers; cd /tmp/bsip; rm -rf d5; cp -a /tmp/strowger-bench-sip-users d5
setsid nice -n -10 /work/wt/bench-sip/target/release/strowger serve --set data_dir=/tmp/bsip/d5 --set sip.listen=127.0.0.1:5390 --set http.listen=127.0.0.1:18095 --set rtc.listen=127.0.0.1:17895 --set log=warn --set sip.rate_per_sec=0 --set sip.trusted_ips=127.0.0.1 --set sip.default_route=sip:127.0.0.1:5080 --set relay.bind=127.0.0.1 > s5.log 2>&1 &
SP=$!; sleep 1.5
UAS_RUN=/tmp/bsip $B/lib/uas.sh start 5080 -sf $B/lib/scenarios/uas-media.xml -mi 127.0.0.1 -rtp_echo -mp 6000
LPORT=5370 WORK=/tmp/bsip/leakw $B/lib/sipp-rate-sweep.sh -t 127.0.0.1:5390 -s "-sf /work/wt/bench-sip/bench/sip/uac-sdp.xml" -r "1500 2000" -d 12 -p $SP -L leak
for t in 0 30 60 90; do [ $t -gt 0 ] && sleep 30; echo "t+${t}s $(curl -s 127.0.0.1:18095/metrics | grep -E '^strowger_(sip_calls_active|relay_sessions|relay_timeouts_total|sip_transactions|sip_calls_failed_total) ' | tr '\n' ' ')"; done
UAS_RUN=/tmp/bsip $B/lib/uas.sh stop 5080; kill $SP; sleep 1; grep -E "WARN|ERROR" s5.log | sed 's/call-[0-9]*/call-N/; s/^[^ ]* //' | sort | uniq -c | sort -rn | head -5
