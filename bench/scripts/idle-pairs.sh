#!/usr/bin/env bash
# Measures wsalive with N idle relayed pairs: RSS growth per pair and
# goroutine count at 0 and at N pairs. Everything runs on loopback; every
# process this script starts is stopped by its PID on exit.
#
#   bench/scripts/idle-pairs.sh [N] [extra HCL for the route block]
#
# Needs: go. Builds wsalive, legacy-echo, wsload and rssprobe into $BIN.
set -euo pipefail
N=${1:-9000}
ROUTE_EXTRA=${2:-}
BIN=${BIN:-$(mktemp -d)}
PORT_BASE=${PORT_BASE:-18100}
cd "$(dirname "$0")/../.."
go build -o "$BIN/" ./cmd/wsalive ./bench/cmd/wsload ./bench/cmd/rssprobe ./examples/legacyecho/cmd/legacy-echo

ulimit -n 20000
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

BACKEND=127.0.0.1:$((PORT_BASE))
LISTEN=127.0.0.1:$((PORT_BASE + 1))
ADMIN=127.0.0.1:$((PORT_BASE + 2))
cat > "$BIN/wsalive.hcl" <<HCL
listener {
  address = "$LISTEN"
}
admin {
  address = "$ADMIN"
}
route "default" {
  upstream = "ws://$BACKEND"
  $ROUTE_EXTRA
}
HCL

"$BIN/legacy-echo" -listen "$BACKEND" >"$BIN/echo.log" 2>&1 & pids+=($!)
"$BIN/wsalive" run -config "$BIN/wsalive.hcl" -log-level warn >"$BIN/wsalive.log" 2>&1 & PROXY=$!; pids+=($PROXY)
for _ in $(seq 50); do curl -sf "http://$ADMIN/healthz" >/dev/null && break; sleep 0.1; done

stats() { curl -sf "http://$ADMIN/stats"; }
gc() { curl -sf "http://$ADMIN/debug/pprof/heap?gc=1" >/dev/null; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$PROXY/status"; }

sleep 1; gc; sleep 1
RSS0=$(rss); G0=$(stats | awk -F'[:,]' '/goroutines/ {gsub(/ /,"",$2); print $2}')
echo "at 0 pairs: rss=${RSS0} KiB goroutines=${G0}"

rm -f "$BIN/r1" "$BIN/r2"
HALF=$((N / 2))
"$BIN/wsload" -mode idle -n "$HALF" -rate 1000 -src-ips 2-125 -url "ws://$LISTEN/" -hold 600s -ready-file "$BIN/r1" >"$BIN/l1.out" 2>"$BIN/l1.err" & L1=$!; pids+=($L1)
"$BIN/wsload" -mode idle -n "$((N - HALF))" -rate 1000 -src-ips 126-250 -url "ws://$LISTEN/" -hold 600s -ready-file "$BIN/r2" >"$BIN/l2.out" 2>"$BIN/l2.err" & L2=$!; pids+=($L2)
for _ in $(seq 600); do [ -s "$BIN/r1" ] && [ -s "$BIN/r2" ] && break; sleep 0.2; done
cat "$BIN/r1" "$BIN/r2"
sleep 3
RSS1=$(rss); S1=$(stats)
gc; sleep 2
RSS2=$(rss)
curl -sf "http://$ADMIN/debug/pprof/heap" -o "$BIN/heap.pprof" || true
grep -E 'HeapInuse|HeapSys|HeapIdle|HeapReleased|StackInuse|Sys =|NextGC|MSpanInuse' < <(curl -sf "http://$ADMIN/debug/pprof/heap?debug=1") | sed 's/^# /  runtime: /' || true
PAIRS=$(echo "$S1" | awk -F'[:,]' '/"pairs"/ {gsub(/ /,"",$2); print $2}')
G1=$(echo "$S1" | awk -F'[:,]' '/goroutines/ {gsub(/ /,"",$2); print $2}')
echo "$S1" | tr -d "\n " ; echo
echo "at ${PAIRS} pairs: rss=${RSS1} KiB (after forced GC: ${RSS2} KiB) goroutines=${G1}"
echo "rss growth per pair: $(( (RSS1 - RSS0) * 1024 / PAIRS )) B (after forced GC: $(( (RSS2 - RSS0) * 1024 / PAIRS )) B)"
PROF=
if [ -n "${CPU_PROFILE:-}" ]; then
  curl -sf "http://$ADMIN/debug/pprof/profile?seconds=10" -o "$BIN/cpu.pprof" & PROF=$!
fi
if [ -n "${PERF:-}" ]; then
  perf record -F 999 -g -p "$PROXY" -o "$BIN/perf.data" -- sleep 10 >/dev/null 2>&1 &
fi
CPU=$("$BIN/rssprobe" -pid "$PROXY" -interval 10s -count 1 2>/dev/null | tail -n 1 || true)
[ -n "$PROF" ] && wait "$PROF" 2>/dev/null || true
echo "proxy over 10 s idle: $CPU"
kill -INT "$L1" "$L2" 2>/dev/null || true
wait "$L1" "$L2" 2>/dev/null || true
