#!/usr/bin/env bash
# TLS side by side: wsalive terminating TLS vs nginx terminating TLS, both
# in front of the same plain ws:// legacy-echo backend, alternating
# wsalive nginx wsalive nginx ... Same self-signed ECDSA P-256 certificate
# (made here with openssl), TLS 1.3 only; the client (wsload -ca-file)
# offers X25519 alone and makes a full handshake per connection. One
# worker each: nginx worker_processes 1, wsalive GOMAXPROCS=1 and one
# engine loop; the proxy is pinned to CPU 0, the backend and the clients
# to CPU 1. CPU is utime+stime from /proc of every proxy process (nginx:
# master and worker). Every process it starts is stopped by its PID on exit.
#
#   bench/scripts/tls-ab.sh handshake [ROUNDS] [N] [INFLIGHT]  # N wss:// handshakes, INFLIGHT at a time (2000, 128)
#   bench/scripts/tls-ab.sh echo      [ROUNDS] [N] [SIZE]      # N connections echoing SIZE bytes, 1 in flight (200, 1024), 4 s window
#   bench/scripts/tls-ab.sh idle      [ROUNDS] [N]             # N idle TLS pairs (2000): RSS delta / pairs
#
# Needs: go, nginx, openssl, curl, taskset, python3. Ports: PORT_BASE
# (default 19380) to +2. TARGETS (default "wsalive nginx") picks the order.
# PROFILE=DIR: echo also writes a 4 s CPU profile of wsalive's window to
# DIR/wsalive-echo.pprof (the profiler's own cost is in that run's CPU);
# idle writes wsalive's heap profile and memstats at N pairs.
set -euo pipefail
MODE=$1 ROUNDS=${2:-3}
case $MODE in
  handshake) N=${3:-2000} INFLIGHT=${4:-128} ;;
  echo) N=${3:-200} SIZE=${4:-1024} ;;
  idle) N=${3:-2000} ;;
  *) echo "mode must be handshake, echo or idle" >&2; exit 2 ;;
esac
TARGETS=${TARGETS:-wsalive nginx}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
PORT_BASE=${PORT_BASE:-19380}
W=$(mktemp -d)
cd "$(dirname "$0")/../.."
go build -o "$W/" ./cmd/wsalive ./bench/cmd/wsload ./examples/legacyecho/cmd/legacy-echo
LISTEN=127.0.0.1:$PORT_BASE ADMIN=127.0.0.1:$((PORT_BASE + 1)) BACKEND=127.0.0.1:$((PORT_BASE + 2))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap 'cleanup; rm -rf "$W"' EXIT
hz=$(getconf CLK_TCK)
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
rss() { local t=0 p; for p in "$@"; do t=$((t + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done; echo "$t"; }
# js FILE EXPR: a field of wsload's JSON summary (its last line).
js() { tail -n 1 "$1" | python3 -c "import json,sys; s=json.load(sys.stdin); print($2)"; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$W/tls.key" -out "$W/tls.crt" 2>/dev/null

cat >"$W/wsalive.hcl" <<HCL
listener {
  address = "$LISTEN"
  tls {
    cert_file   = "$W/tls.crt"
    key_file    = "$W/tls.key"
    min_version = "1.3"
  }
}
admin {
  address = "$ADMIN"
  pprof   = true # for PROFILE=1; not fetched otherwise
}
engine {
  loops = 1
}
route "bench" {
  upstream = "ws://$BACKEND"
}
HCL

# nginx: bench/configs/nginx.conf.tmpl (the harness's WebSocket
# configuration) with the listener made TLS 1.3 on the same certificate.
mkdir -p "$W/nginx"
cat >"$W/nginx/nginx.conf" <<NGINX
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
events {
  use epoll;
  worker_connections 19900;
}
http {
  access_log off;
  client_body_temp_path $W/nginx/client_body;
  proxy_temp_path $W/nginx/proxy;
  fastcgi_temp_path $W/nginx/fastcgi;
  uwsgi_temp_path $W/nginx/uwsgi;
  scgi_temp_path $W/nginx/scgi;
  map \$http_upgrade \$connection_upgrade {
    default upgrade;
    ''      close;
  }
  server {
    listen $LISTEN ssl backlog=4096;
    ssl_certificate     $W/tls.crt;
    ssl_certificate_key $W/tls.key;
    ssl_protocols       TLSv1.3;
    location / {
      proxy_pass http://$BACKEND;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header Host \$host;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }
  }
}
NGINX
"$NGINX" -t -q -p "$W/nginx" -c "$W/nginx/nginx.conf" -e "$W/nginx/error.log"

LOAD=(taskset -c 1 "$W/wsload" -url "wss://$LISTEN/" -ca-file "$W/tls.crt" -src-ips 2-250)

# start TARGET: starts the backend and the proxy; sets PROCS to the proxy's
# processes (nginx: master and worker).
start() {
  taskset -c 1 "$W/legacy-echo" -listen "$BACKEND" >/dev/null 2>&1 & pids+=($!)
  if [ "$1" = wsalive ]; then
    GOMAXPROCS=1 taskset -c 0 "$W/wsalive" run -config "$W/wsalive.hcl" -log-level warn >"$W/wsalive.log" 2>&1 & PROCS=$!; pids+=($PROCS)
  else
    taskset -c 0 "$NGINX" -p "$W/nginx" -c "$W/nginx/nginx.conf" -e "$W/nginx/error.log" & local m=$!; pids+=($m)
    for _ in $(seq 50); do [ -n "$(pgrep -P "$m" || true)" ] && break; sleep 0.1; done
    PROCS="$m $(pgrep -P "$m")"
  fi
  for _ in $(seq 100); do curl -sk -o /dev/null "https://$LISTEN/" && break; sleep 0.1; done
  sleep 1
}

one() { # one run of target $1
  local t=$1
  start "$t"
  # shellcheck disable=SC2086
  if [ "$MODE" = handshake ]; then
    local t0; t0=$(ticks $PROCS)
    "${LOAD[@]}" -mode idle -n "$N" -rate -1 -dial-concurrency "$INFLIGHT" -hold 1ms >"$W/load.out" 2>"$W/load.err" || true
    local t1; t1=$(ticks $PROCS)
    local opened rate p50 p99; opened=$(js "$W/load.out" 's["opened"]'); rate=$(js "$W/load.out" 'round(s["dial_rate_per_s"])')
    p50=$(js "$W/load.out" 's["handshake"]["p50_ms"]'); p99=$(js "$W/load.out" 's["handshake"]["p99_ms"]')
    echo "$t: $rate handshakes/s ($opened of $N opened, $INFLIGHT in flight), handshake p50 $p50 ms p99 $p99 ms; proxy CPU $(( (t1 - t0) * 1000 / hz )) ms = $(( (t1 - t0) * 1000000 / hz / (opened > 0 ? opened : 1) )) µs per handshake"
  elif [ "$MODE" = echo ]; then
    "${LOAD[@]}" -mode echo -n "$N" -size "$SIZE" -inflight 1 -duration 8s -rate -1 >"$W/load.out" 2>"$W/load.err" &
    local load=$!; pids+=($load)
    sleep 2
    if [ -n "${PROFILE:-}" ] && [ "$t" = wsalive ]; then
      curl -sf "http://$ADMIN/debug/pprof/profile?seconds=4" -o "$PROFILE/wsalive-echo.pprof" & pids+=($!)
    fi
    local t0; t0=$(ticks $PROCS); sleep 4; local t1; t1=$(ticks $PROCS)
    wait "$load" || true
    local rate errs; rate=$(js "$W/load.out" 'round(s["echo"]["msgs_per_s"])'); errs=$(js "$W/load.out" 's["errors"]')
    echo "$t: $rate msg/s (whole run, $errs errors); proxy CPU $(( (t1 - t0) * 1000 / hz )) ms over 4 s = $(awk -v c=$((t1 - t0)) -v hz="$hz" -v r="$rate" 'BEGIN {printf "%.1f", c / hz * 1e6 / (r * 4)}') µs per message"
  else
    local r0; r0=$(rss $PROCS)
    rm -f "$W/ready"
    "${LOAD[@]}" -mode idle -n "$N" -rate 1000 -dial-concurrency 64 -hold 120s -ready-file "$W/ready" >"$W/load.out" 2>"$W/load.err" & pids+=($!)
    for _ in $(seq 300); do [ -s "$W/ready" ] && break; sleep 0.2; done
    sleep 5
    local r1; r1=$(rss $PROCS)
    local extra=""
    if [ -n "${PROFILE:-}" ] && [ "$t" = wsalive ]; then
      curl -sf "http://$ADMIN/debug/pprof/heap" -o "$PROFILE/wsalive-idle-heap.pprof" || true
      curl -sf "http://$ADMIN/debug/pprof/heap?debug=1" | grep -E '^# (HeapInuse|HeapAlloc|Sys|Stack|MSpan|NumGC) ' >"$PROFILE/wsalive-idle-memstats.txt" || true
    fi
    if [ "$t" = wsalive ]; then extra="; goroutines $(curl -sf "http://$ADMIN/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["goroutines"])' || echo '?')"; fi
    echo "$t: $(cat "$W/ready" | tr -d '\n' | cut -c1-60); RSS $r0 -> $r1 KiB = $(( (r1 - r0) * 1024 / N )) B per idle TLS pair$extra"
  fi
  cleanup
}

for _ in $(seq "$ROUNDS"); do
  for t in $TARGETS; do one "$t"; done
done
