#!/usr/bin/env bash
# Measures what issue 11 asks of operations, on loopback:
#  1. the cost of one /metrics scrape at N idle pairs (default 9,000): wall
#     time and bytes, plain and gzip, and the proxy's CPU per scrape (its
#     CPU over the scrapes less its idle CPU over as long);
#  2. a real drain's close-time histogram: D pairs (default 1,000), POST
#     /drain with a W window (default 10s), the proxy's open pairs sampled
#     every 100 ms, closes counted per second of the window.
# Every process this script starts is stopped by its PID on exit.
#
#   bench/scripts/ops-measure.sh [N] [D] [W]
#
# Needs: go, curl, python3. Builds wsalive, legacy-echo and wsload into $BIN.
set -euo pipefail
N=${1:-9000}
D=${2:-1000}
W=${3:-10s}
SCRAPES=${SCRAPES:-50}
BIN=${BIN:-$(mktemp -d)}
PORT_BASE=${PORT_BASE:-18200}
cd "$(dirname "$0")/../.."
go build -o "$BIN/" ./cmd/wsalive ./bench/cmd/wsload ./examples/legacyecho/cmd/legacy-echo

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
drain {
  delay  = "0s"
  window = "$W"
}
route "default" {
  upstream = "ws://$BACKEND"
}
HCL

"$BIN/legacy-echo" -listen "$BACKEND" >"$BIN/echo.log" 2>&1 & pids+=($!)
"$BIN/wsalive" run -config "$BIN/wsalive.hcl" -log-level info >"$BIN/wsalive.log" 2>&1 & PROXY=$!; pids+=($PROXY)
for _ in $(seq 50); do curl -sf "http://$ADMIN/readyz" >/dev/null && break; sleep 0.1; done

pairs() { curl -sf "http://$ADMIN/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs"])'; }
# ticks: the proxy's CPU so far, in clock ticks (utime + stime).
ticks() { awk '{print $14 + $15}' "/proc/$PROXY/stat"; }
HZ=$(getconf CLK_TCK)

# load K FIRST LAST: K idle pairs from source addresses 127.0.0.FIRST-LAST,
# in two wsload processes; waits until both are ready.
load() {
  local k=$1 half=$(( $1 / 2 ))
  rm -f "$BIN/r1" "$BIN/r2"
  "$BIN/wsload" -mode idle -n "$half" -rate 1000 -src-ips 2-125 -url "ws://$LISTEN/" -hold 600s -ready-file "$BIN/r1" >"$BIN/l1.out" 2>"$BIN/l1.err" & L1=$!; pids+=($L1)
  "$BIN/wsload" -mode idle -n "$((k - half))" -rate 1000 -src-ips 126-250 -url "ws://$LISTEN/" -hold 600s -ready-file "$BIN/r2" >"$BIN/l2.out" 2>"$BIN/l2.err" & L2=$!; pids+=($L2)
  for _ in $(seq 600); do [ -s "$BIN/r1" ] && [ -s "$BIN/r2" ] && break; sleep 0.2; done
  cat "$BIN/r1" "$BIN/r2"
}

echo "== scrape cost at $N idle pairs"
load "$N"
sleep 3
echo "pairs open: $(pairs)"
curl -sf "http://$ADMIN/metrics" -o "$BIN/metrics.txt"
echo "series in the scrape: $(grep -vc '^#' "$BIN/metrics.txt"), bytes: $(wc -c < "$BIN/metrics.txt")"
t0=$(ticks); s0=$(date +%s.%N)
for _ in $(seq "$SCRAPES"); do
  curl -s -o /dev/null -w '%{time_total} %{size_download}\n' "http://$ADMIN/metrics"
done > "$BIN/scrapes.txt"
t1=$(ticks); s1=$(date +%s.%N)
for _ in $(seq "$SCRAPES"); do
  curl -s -o /dev/null -H 'Accept-Encoding: gzip' -w '%{time_total} %{size_download}\n' "http://$ADMIN/metrics"
done > "$BIN/scrapes-gzip.txt"
t2=$(ticks); s2=$(date +%s.%N)
# The same time again without scrapes: the idle pairs' own CPU.
sleep "$(python3 -c "print($s2 - $s0)")"
t3=$(ticks)
python3 - "$BIN" "$t0" "$t1" "$t2" "$t3" "$HZ" "$SCRAPES" <<'PY'
import sys, statistics
bin, t0, t1, t2, t3, hz, k = sys.argv[1], *map(int, sys.argv[2:8])
idle_ms = (t3 - t2) * 1000 / hz  # over as long as both scrape runs took
for name, cpu in (("plain", t1 - t0), ("gzip", t2 - t1)):
    rows = [l.split() for l in open(f"{bin}/scrapes{'' if name == 'plain' else '-gzip'}.txt")]
    ms = sorted(float(r[0]) * 1000 for r in rows)
    size = int(rows[-1][1])
    cpu_ms = cpu * 1000 / hz
    print(f"{name}: {k} scrapes, wall ms p50 {statistics.median(ms):.1f} p90 {ms[int(len(ms)*0.9)]:.1f} max {ms[-1]:.1f}; "
          f"{size} bytes; proxy CPU {cpu_ms / k:.1f} ms per scrape (idle share not subtracted)")
print(f"idle pairs alone over the time both runs took: {idle_ms:.0f} ms CPU, {idle_ms / (2 * k):.1f} ms per scrape's share")
PY
kill -INT "$L1" "$L2" 2>/dev/null || true
wait "$L1" "$L2" 2>/dev/null || true
for _ in $(seq 300); do [ "$(pairs)" = 0 ] && break; sleep 0.2; done

echo "== drain of $D pairs over $W"
load "$D"
sleep 2
echo "pairs open: $(pairs)"
# The sampler takes its first sample, then starts the drain (POST /drain,
# answered when the drain is done) and samples until no pair is left.
python3 - "$ADMIN" <<'PY'
import json, sys, threading, time, urllib.request
admin = sys.argv[1]
def pairs():
    with urllib.request.urlopen(f"http://{admin}/stats") as r:
        return json.load(r)["pairs"]
answer = {}
def drain():
    with urllib.request.urlopen(urllib.request.Request(f"http://{admin}/drain", method="POST"), timeout=120) as r:
        answer["body"] = r.read().decode()
        answer["at"] = time.monotonic()
samples = [(0.0, pairs())]
start = time.monotonic()
threading.Thread(target=drain).start()
while True:
    time.sleep(0.1)
    t, n = time.monotonic() - start, pairs()
    samples.append((t, n))
    if n == 0 or t > 120:
        break
first = samples[0][1]
print(f"sampled {len(samples)} times; {first} pairs before POST /drain")
prev, per_sec = first, {}
for t, n in samples:
    per_sec[int(t)] = per_sec.get(int(t), 0) + prev - n
    prev = n
for s in sorted(per_sec):
    print(f"  second {s:2d}: {per_sec[s]:4d} closed {'#' * (per_sec[s] // 5)}")
while "at" not in answer and time.monotonic() - start < 120:
    time.sleep(0.05)
if "at" in answer:
    print(f"POST /drain answered after {answer['at'] - start:.2f} s: {answer['body'].strip()}")
PY
grep -E 'msg=drained|draining' "$BIN/wsalive.log" || true
