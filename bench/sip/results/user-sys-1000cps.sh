#!/bin/bash
# user vs system CPU of the server during a 1000 cps x 10 s -sn uac run (Strowger direct media, then Kamailio plain)
B=/work/shared/bench-peers; cd /tmp/bsip
ust() { { cat /proc/[0-9]*/stat 2>/dev/null; } | awk -v root=$1 '{line=$0; sub(/^.*\) /,"",line); split(line,f," "); pp[$1]=f[2]; u[$1]=f[12]; s[$1]=f[13]} END{want[root]=1; c=1; while(c){c=0; for(p in pp) if(!(p in want) && (pp[p] in want)){want[p]=1;c=1}} for(p in want){U+=u[p];S+=s[p]} print U, S}'; }
run() { UAS_RUN=/tmp/bsip $B/lib/uas.sh start 5080 -sf $B/lib/scenarios/uas-no180.xml >/dev/null
  read U0 S0 < <(ust $1); timeout 60 nice -n -10 sipp 127.0.0.1:5390 -sn uac -i 127.0.0.1 -p 5370 -r 1000 -m 10000 -timeout 40s -nostdin -buff_size 4194304 -trace_stat -stf st-$2.csv -fd 1 >/dev/null 2>&1
  read U1 S1 < <(ust $1); UAS_RUN=/tmp/bsip $B/lib/uas.sh stop 5080 >/dev/null
  echo "$2: 10000 calls at 1000 cps: user $(( (U1-U0)*10 )) ms, system $(( (S1-S0)*10 )) ms => user $(echo "scale=3; (U1-U0)*10/10000" | bc) ms/call, system $(echo "scale=3; (S1-S0)*10/10000" | bc) ms/call; load1 $(cut -d' ' -f1 /proc/loadavg); $(tail -1 st-$2.csv | awk -F';' '{print "ok",$16? "":""}')"; }
rm -rf d6; cp -a /tmp/strowger-bench-sip-users d6
setsid nice -n -10 /work/wt/bench-sip/target/release/strowger serve --set data_dir=/tmp/bsip/d6 --set sip.listen=127.0.0.1:5390 --set http.listen=127.0.0.1:18095 --set rtc.listen=127.0.0.1:17895 --set log=warn --set sip.rate_per_sec=0 --set sip.trusted_ips=127.0.0.1 --set sip.default_route=sip:127.0.0.1:5080 --set sip.direct_media=true --set relay.bind=127.0.0.1 > s6.log 2>&1 &
SP=$!; sleep 1.5; run $SP strowger; kill $SP; sleep 1
KRUN=/tmp/bsip/k6 PORT=5390 /work/wt/bench-sip/bench/sip/kamailio.sh start plain 2 >/dev/null; run $(cat /tmp/bsip/k6/kamailio.pid) kamailio; KRUN=/tmp/bsip/k6 /work/wt/bench-sip/bench/sip/kamailio.sh stop
