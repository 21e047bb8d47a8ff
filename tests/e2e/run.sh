#!/usr/bin/env bash
# End-to-end suite: the release server and headless Chromium peers, together inside a private
# network namespace that has only `lo`, so WebRTC stays on 127.0.0.1 and `tc` on `lo` shapes
# nothing outside the test.
#
#   tests/e2e/run.sh [FILE.test.mjs ...]     (as root; default: every tests/e2e/*.test.mjs)
#
# Environment (all optional):
#   STROWGER_BIN          server binary (default target/release/strowger)
#   E2E_READY_TIMEOUT     seconds to wait for /readyz (default 30)
#   E2E_TIMEOUT           seconds for the whole node test run (default 900)
#   E2E_KEEP_LOG=1        print the server log tail even when everything passed
#   E2E_LOG_LINES         lines of server log printed on failure (default 120)
#   STROWGER_LOG          server log filter (default info)
#   E2E_SIMULCAST_SOURCE=file, E2E_SIMULCAST_LIMIT_KBIT: see simulcast.test.mjs
# Output: tests/e2e/out/ (server.log, per-peer browser console logs of failed tests).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

bin=${STROWGER_BIN:-$root/target/release/strowger}
ready_timeout=${E2E_READY_TIMEOUT:-30}
run_timeout=${E2E_TIMEOUT:-900}
out=$here/out
mkdir -p "$out"
rm -f "$out"/*.log
log=$out/server.log

die() { echo "e2e: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "must run as root (ip netns, tc)"
[ -x "$bin" ] || die "no server binary at $bin (cargo build --release)"
command -v ip >/dev/null || die "ip (iproute2) missing"
command -v tc >/dev/null || die "tc (iproute2) missing"
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium missing (apt-get install chromium)"
[ -d "$root/tests/node_modules/playwright-core" ] || die "playwright-core missing (npm ci in tests/)"

if [ $# -gt 0 ]; then
  files=("$@")
else
  # node sorts them: 0-environment.test.mjs (Chromium, getDisplayMedia, tc; no server) first.
  files=("$here"/*.test.mjs)
fi

ns="strowger-e2e-$$-$RANDOM"
data=$(mktemp -d /tmp/strowger-e2e-data.XXXXXX)
api_key=e2e
api_secret=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
http_listen=127.0.0.1:8080
rtc_listen=127.0.0.1:7882
server_pid=
status=1
ns_made=0

nsexec() { ip netns exec "$ns" "$@"; }

cleanup() {
  set +e
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$server_pid" 2>/dev/null; then
      echo "e2e: server did not stop within 5 s of SIGTERM; killing it" >&2
      kill -KILL "$server_pid" 2>/dev/null
    fi
    wait "$server_pid" 2>/dev/null
  fi
  if [ "$ns_made" = 1 ]; then
    # Anything still running in our own namespace was started by this script.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  fi
  rm -rf "$data"
  if [ "$status" != 0 ] || [ "${E2E_KEEP_LOG:-0}" = 1 ]; then
    echo "---- server log tail ($log) ----" >&2
    tail -n "${E2E_LOG_LINES:-120}" "$log" >&2 2>/dev/null
    echo "---- end of server log ----" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns"
ns_made=1
nsexec ip link set lo up

echo "e2e: namespace $ns, server $bin, data $data"
: >"$log"
ip netns exec "$ns" env \
  STROWGER_HTTP_LISTEN=$http_listen \
  STROWGER_RTC_LISTEN=$rtc_listen \
  STROWGER_RTC_PUBLIC_IPS=127.0.0.1 \
  STROWGER_DATA_DIR="$data" \
  STROWGER_API_KEY=$api_key \
  STROWGER_API_SECRET="$api_secret" \
  STROWGER_LOG="${STROWGER_LOG:-info}" \
  NO_COLOR=1 \
  "$bin" serve >>"$log" 2>&1 &
server_pid=$!

# Wait for /readyz, bounded; give up at once if the server exited.
deadline=$((SECONDS + ready_timeout))
until nsexec curl -fsS -o /dev/null --max-time 2 "http://$http_listen/readyz" 2>/dev/null; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    wait "$server_pid" && rc=0 || rc=$?
    server_pid=
    echo "e2e: server exited (status $rc) before it was ready" >&2
    exit 1
  fi
  if [ $SECONDS -ge $deadline ]; then
    echo "e2e: server not ready within ${ready_timeout}s (GET /readyz)" >&2
    exit 1
  fi
  sleep 0.2
done
echo "e2e: server ready (pid $server_pid) after $((SECONDS - deadline + ready_timeout))s"

set +e
nsexec env \
  STROWGER_E2E_URL="http://$http_listen" \
  STROWGER_E2E_RTC_PORT="${rtc_listen##*:}" \
  STROWGER_E2E_OUT="$out" \
  STROWGER_BIN="$bin" \
  STROWGER_API_KEY=$api_key \
  STROWGER_API_SECRET="$api_secret" \
  timeout --kill-after=10 "$run_timeout" \
  node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
status=$?
set -e
if [ "$status" = 124 ]; then
  echo "e2e: node test run exceeded ${run_timeout}s" >&2
fi

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "e2e: the server died during the tests" >&2
  server_pid=
  status=1
fi
# A panic in any server task is a failure even when the tests passed.
panics=$(grep -c 'panicked' "$log" || true)
errors=$(grep -cE '\bERROR\b|"level":"ERROR"' "$log" || true)
echo "e2e: server log: $(wc -l <"$log") lines, $errors ERROR, $panics panics ($log)"
if [ "$panics" != 0 ]; then
  echo "e2e: the server panicked:" >&2
  grep -A3 'panicked' "$log" | head -n 40 >&2
  status=1
fi
exit "$status"
