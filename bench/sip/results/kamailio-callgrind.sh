#!/bin/bash
# Kamailio under callgrind: instructions per authenticated REGISTER (sum over all Kamailio processes)
B=/work/shared/bench-peers; R=/tmp/bsip/kcg; rm -rf $R; mkdir -p $R; MODE=${1:-auth}; N=${2:-3000}
sed -e "s|@DBTEXT_DIR@|$B/kamailio/dbtext|g" -e "s|/tmp/kamailio_bench_rpc.fifo|$R/rpc.fifo|" -e "s|unix:/tmp/kamailio_bench_ctl|unix:$R/ctl|" $B/kamailio/kamailio-bench.cfg > $R/k.cfg
DEFS="-A WORKERS=2 -A LISTEN_ADDR=udp:127.0.0.1:5390"; [ $MODE = auth ] && DEFS="$DEFS -A WITH_AUTH"
setsid nice -n -10 valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=$R/cg.%p kamailio -DD -E -f $R/k.cfg -P $R/k.pid.self -m 256 -M 32 $DEFS > $R/k.log 2>&1 &
KP=$!; for i in $(seq 1 60); do sleep 1; ss -Hluan 'sport = :5390' | grep -q . && break; done; sleep 3
echo "kamailio under callgrind pid $KP children $(pgrep -P $KP | wc -l)"
callgrind_control -z > /dev/null
if [ $MODE = auth ]; then SC="-sf $B/lib/scenarios/reg-auth.xml -inf $B/lib/scenarios/users.csv"; else
  UAS_RUN=$R $B/lib/uas.sh start 5080 -sf $B/lib/scenarios/uas-no180.xml; SC="-sn uac"; fi
timeout 300 sipp 127.0.0.1:5390 $SC -i 127.0.0.1 -p 5370 -r 100 -m $N -timeout 200s -timeout_error -nostdin -trace_stat -stf $R/st.csv -fd 1 -buff_size 4194304 > $R/sipp.out 2>&1
callgrind_control -d > /dev/null; sleep 2
[ $MODE = auth ] || UAS_RUN=$R $B/lib/uas.sh stop 5080
ok=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++)h[$i]=i; next} {l=$0} END{split(l,f,";"); print f[h["SuccessfulCall(C)"]]+0, f[h["FailedCall(C)"]]+0, f[h["Retransmissions(C)"]]+0}' $R/st.csv)
ir=$(grep -h "^summary:" $R/cg.*.1 | awk "{s+=\$2} END{printf \"%d\", s}"); nf=$(ls $R/cg.*.1 | wc -l)
echo "kamailio $MODE callgrind: Ir=$ir over $N ($nf processes; ok failed retrans: $ok) => $(echo "$ir / $N" | bc) per op"
kill -TERM $KP; for i in $(seq 1 100); do kill -0 $KP 2>/dev/null || break; sleep 0.2; done; kill -0 $KP 2>/dev/null && kill -KILL $KP; echo stopped
