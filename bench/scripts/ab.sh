#!/usr/bin/env bash
# A/B two wsalive builds, alternating A B A B ..., on loopback, with the
# engine as the harness runs it (GOMAXPROCS=1, one loop). Prints, per run,
# the proxy's CPU (utime+stime from /proc) over a window and what the load
# did in it. Every process it starts is stopped by its PID on exit.
#
#   bench/scripts/ab.sh echo BIN_A BIN_B [ROUNDS] [N] [SIZE]   # wsload echo, 4 s window
#   bench/scripts/ab.sh idle BIN_A BIN_B [ROUNDS] [N]          # N idle pairs, heartbeats 5 s both sides, 10 s window
#   bench/scripts/ab.sh hog  BIN_A BIN_B [ROUNDS] [N] [SIZE]   # echo with a busy loop pinned on the proxy's core
#   bench/scripts/ab.sh handshake BIN_A BIN_B [ROUNDS] [N]     # N handshakes at 1,000/s: latency, proxy CPU
#
# BIN_A and BIN_B are wsalive binaries (go build -o DIR/ ./cmd/wsalive at
# two commits). Needs: go (builds wsload and legacy-echo), root for the
# idle mode's open-file limit. Ports: PORT_BASE (default 19180) to +2.
set -euo pipefail
MODE=$1 A=$2 B=$3 ROUNDS=${4:-3}
case $MODE in
  echo) N=${5:-200} ;;
  hog) N=${5:-50} ;;
  idle) N=${5:-9000} ;;
  handshake) N=${5:-1000} ;;
  *) echo "mode must be echo, idle, hog or handshake" >&2; exit 2 ;;
esac
SIZE=${6:-1024}
OWN_TOOLS=
if [ -z "${TOOLS:-}" ]; then TOOLS=$(mktemp -d); OWN_TOOLS=$TOOLS; fi
PORT_BASE=${PORT_BASE:-19180}
cd "$(dirname "$0")/../.."
go build -o "$TOOLS/" ./bench/cmd/wsload ./examples/legacyecho/cmd/legacy-echo
LISTEN=127.0.0.1:$PORT_BASE ADMIN=127.0.0.1:$((PORT_BASE + 1)) BACKEND=127.0.0.1:$((PORT_BASE + 2))

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap 'cleanup; [ -n "$OWN_TOOLS" ] && rm -rf "$OWN_TOOLS"' EXIT
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# switches: voluntary and involuntary context switches of every thread of $1.
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}'; }

# config writes the harness's own wsalive configuration for the mode
# (bench/configs): heartbeats every 5 s both sides for idle pairs, the
# defaults otherwise; one event loop either way.
config() {
  local tmpl=bench/configs/wsalive-throughput.hcl
  if [ "$MODE" = idle ]; then tmpl=bench/configs/wsalive-heartbeat.hcl; fi
  sed -e "s|{{listen}}|$LISTEN|" -e "s|{{admin}}|$ADMIN|" -e "s|{{upstream}}|ws://$BACKEND|" "$tmpl" >"$TOOLS/ab.hcl"
}

one() { # one run of build $1
  local bin=$1
  # In hog mode the proxy and a busy loop share CPU 0; everything else
  # runs on CPU 1.
  local on0="" on1=""
  if [ "$MODE" = hog ]; then on0="taskset -c 0" on1="taskset -c 1"; fi
  $on1 "$TOOLS/legacy-echo" -listen "$BACKEND" >/dev/null 2>&1 & pids+=($!)
  GOMAXPROCS=1 $on0 "$bin" run -config "$TOOLS/ab.hcl" -log-level warn & local proxy=$!; pids+=($proxy)
  for _ in $(seq 50); do curl -sf "http://$ADMIN/healthz" >/dev/null && break; sleep 0.1; done
  local hz; hz=$(getconf CLK_TCK)
  if [ "$MODE" = hog ]; then
    # What the engine does next to something CPU-bound.
    $on0 sh -c 'while :; do :; done' & pids+=($!)
    $on1 "$TOOLS/wsload" -mode echo -n "$N" -size "$SIZE" -inflight 1 -duration 5s -rate -1 -url "ws://$LISTEN/" >"$TOOLS/load.out" 2>&1 || true
    echo "$(basename "$(dirname "$bin")"): $(awk '/^messages:/ {print $4}' "$TOOLS/load.out") msg/s next to a CPU hog; $(grep '^round trip' "$TOOLS/load.out" | cut -c1-40)"
  elif [ "$MODE" = handshake ]; then
    sleep 1
    local t0; t0=$(ticks "$proxy")
    "$TOOLS/wsload" -mode idle -n "$N" -rate 1000 -hold 100ms -url "ws://$LISTEN/" >"$TOOLS/load.out" 2>&1 || true
    local t1; t1=$(ticks "$proxy")
    echo "$(basename "$(dirname "$bin")"): $(grep '^handshake' "$TOOLS/load.out" | cut -c1-75); proxy CPU $(( (t1 - t0) * 1000 / hz )) ms for $N connections"
  elif [ "$MODE" = echo ]; then
    "$TOOLS/wsload" -mode echo -n "$N" -size "$SIZE" -inflight 1 -duration 8s -rate -1 -url "ws://$LISTEN/" >"$TOOLS/load.out" 2>&1 &
    local load=$!; pids+=($load)
    sleep 2; local t0; t0=$(ticks "$proxy"); sleep 4; local t1; t1=$(ticks "$proxy")
    wait "$load" || true
    local rate; rate=$(awk '/^messages:/ {print $4}' "$TOOLS/load.out")
    echo "$(basename "$(dirname "$bin")"): proxy CPU $(( (t1 - t0) * 1000 / hz )) ms over 4 s; $rate msg/s (whole run); $(grep '^round trip' "$TOOLS/load.out" | cut -c1-40)"
  else
    local half=$((N / 2))
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    rm -f "$TOOLS/r1" "$TOOLS/r2"
    "$TOOLS/wsload" -mode idle -n "$half" -rate 3000 -src-ips 2-125 -hold 120s -url "ws://$LISTEN/" -ready-file "$TOOLS/r1" >/dev/null 2>&1 & pids+=($!)
    "$TOOLS/wsload" -mode idle -n "$((N - half))" -rate 3000 -src-ips 126-250 -hold 120s -url "ws://$LISTEN/" -ready-file "$TOOLS/r2" >/dev/null 2>&1 & pids+=($!)
    for _ in $(seq 300); do [ -s "$TOOLS/r1" ] && [ -s "$TOOLS/r2" ] && break; sleep 0.2; done
    sleep 6
    local t0 c0; t0=$(ticks "$proxy"); c0=$(switches "$proxy"); sleep 10
    local t1 c1; t1=$(ticks "$proxy"); c1=$(switches "$proxy")
    local rss; rss=$(awk '/VmRSS/ {print $2}' "/proc/$proxy/status")
    echo "$(basename "$(dirname "$bin")"): proxy CPU $(awk -v t=$((t1 - t0)) -v hz="$hz" 'BEGIN {printf "%.2f", t / hz / 10 * 100}') % of a core over 10 s with $N idle pairs; $(( (c1 - c0) / 10 )) context switches/s; RSS ${rss} KiB"
  fi
  cleanup
}

config
for _ in $(seq "$ROUNDS"); do
  one "$A"
  one "$B"
done
