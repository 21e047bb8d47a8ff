#!/usr/bin/env bash
# A stand-in for the strowger binary, to try run.sh itself before the B2BUA exists:
#   STROWGER_BIN=tests/sip/fake-strowger-kamailio.sh tests/sip/run.sh reg-udp call busy cancel baresip
# `user add NAME --password PW --set data_dir=DIR` adds a db_text subscriber under DIR;
# `serve --set sip.listen=IP:PORT --set http.listen=IP:PORT --set data_dir=DIR ...` runs Kamailio
# (bench-peers config, WITH_AUTH, UDP and TCP) on sip.listen and a tiny HTTP server answering
# /readyz, until SIGTERM. Kamailio is a proxy: expect the B2BUA-only checks (404/480,
# the no-answer timeout, RTP relay, the malformed-message policy) to fail.
set -uo pipefail
BENCH_PEERS=${BENCH_PEERS:-/work/shared/bench-peers}
cmd=${1:-}; shift || true
declare -A set
name= pw=
while [ $# -gt 0 ]; do
  case "$1" in
    --set) set[${2%%=*}]=${2#*=}; shift 2 ;;
    --password) pw=$2; shift 2 ;;
    add) name=$2; shift 2 ;;
    *) shift ;;
  esac
done
data=${set[data_dir]:?data_dir}
db=$data/dbtext
mkdir -p "$db"
[ -f "$db/version" ] || cp "$BENCH_PEERS/kamailio/dbtext/version" "$db/version"
[ -f "$db/subscriber" ] || head -n 1 "$BENCH_PEERS/kamailio/dbtext/subscriber" >"$db/subscriber"
case "$cmd" in
  user)
    n=$(($(wc -l <"$db/subscriber")))
    echo "$n:$name:127.0.0.1:$pw::" >>"$db/subscriber"
    echo "user $name added" ;;
  serve)
    sip=${set[sip.listen]:-127.0.0.1:5060}
    http=${set[http.listen]:-127.0.0.1:18080}
    sed -e "s|@DBTEXT_DIR@|$db|g" -e "s|^disable_tcp=yes|disable_tcp=no\nlisten=tcp:$sip|" \
      "$BENCH_PEERS/kamailio/kamailio-bench.cfg" >"$data/kamailio.cfg"
    kamailio -DD -E -f "$data/kamailio.cfg" -P "$data/kamailio.pid" -m 128 -M 16 -A WITH_AUTH -A WORKERS=2 \
      -A "LISTEN_ADDR=udp:$sip" </dev/null 2>&1 &
    k=$!
    mkdir -p "$data/www" && : >"$data/www/readyz"
    python3 -m http.server "${http##*:}" --bind "${http%:*}" --directory "$data/www" >/dev/null 2>&1 &
    h=$!
    trap 'kill -TERM $k $h 2>/dev/null; wait $k $h 2>/dev/null; exit 0' TERM INT
    wait $k ;;
  *) echo "fake strowger: $cmd not supported" >&2; exit 2 ;;
esac
