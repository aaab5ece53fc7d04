#!/usr/bin/env bash
# Plain HTTP pass-through, side by side: nginx proxying a location and one
# or more wsalive builds proxying the same origin, alternating
# (nginx A B nginx A B ...), each on one core with wrk on the other. The
# origin is an nginx answering 13 bytes ("hello, world\n") with
# keep-alive; both proxies keep their upstream connections alive. Prints,
# per run, requests/s (wrk) and the proxy's CPU per request (utime+stime
# from /proc over the wrk run, divided by the requests wrk counted). Every
# process it starts is stopped by its PID on exit.
#
#   bench/scripts/http-ab.sh BIN_A [BIN_B] [ROUNDS] [CONNS] [SECONDS]
#
# BIN_A and BIN_B are wsalive binaries (go build -o DIR/ ./cmd/wsalive at
# two commits). Needs: nginx, wrk, taskset. Ports: PORT_BASE (default
# 19280) to +3.
set -euo pipefail
A=$1 B=${2:-} ROUNDS=${3:-3} CONNS=${4:-32} SECS=${5:-10}
PORT_BASE=${PORT_BASE:-19280}
ORIGIN=127.0.0.1:$PORT_BASE NGINX=127.0.0.1:$((PORT_BASE + 1))
LISTEN=127.0.0.1:$((PORT_BASE + 2)) ADMIN=127.0.0.1:$((PORT_BASE + 3))
DIR=$(mktemp -d)
cd "$(dirname "$0")/../.."

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap 'cleanup; rm -rf "$DIR"' EXIT
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# The origin (one worker, not pinned: it is the same for every proxy) and
# nginx as the proxy under test (one worker, pinned to CPU 0), upstream
# keep-alive as nginx's documentation recommends for a proxied location.
mkdir -p "$DIR/origin" "$DIR/proxy"
cat >"$DIR/origin/nginx.conf" <<EOF
daemon off; worker_processes 1; pid $DIR/origin/nginx.pid; error_log $DIR/origin/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; client_body_temp_path $DIR/origin; proxy_temp_path $DIR/origin;
  fastcgi_temp_path $DIR/origin; uwsgi_temp_path $DIR/origin; scgi_temp_path $DIR/origin;
  keepalive_requests 1000000;
  server { listen $ORIGIN backlog=4096; location / { default_type text/plain; return 200 "hello, world\n"; } }
}
EOF
cat >"$DIR/proxy/nginx.conf" <<EOF
daemon off; worker_processes 1; worker_cpu_affinity 01; pid $DIR/proxy/nginx.pid; error_log $DIR/proxy/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; client_body_temp_path $DIR/proxy; proxy_temp_path $DIR/proxy;
  fastcgi_temp_path $DIR/proxy; uwsgi_temp_path $DIR/proxy; scgi_temp_path $DIR/proxy;
  keepalive_requests 1000000;
  upstream origin { server $ORIGIN; keepalive 64; }
  server { listen $NGINX backlog=4096; location / {
    proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
    proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
  } }
}
EOF
cat >"$DIR/wsalive.hcl" <<EOF
listener { address = "$LISTEN" }
admin { address = "$ADMIN" }
engine { loops = 1 }
route "app" { upstream = "ws://$ORIGIN" }
EOF
nginx -p "$DIR/origin" -c "$DIR/origin/nginx.conf" -e "$DIR/origin/error.log" & pids+=($!)
sleep 0.5

# run NAME PID URL: wrk against URL, the CPU of PID over the run.
run() {
  local name=$1 pid=$2 url=$3
  taskset -c 1 wrk -t1 -c"$CONNS" -d1s "$url" >/dev/null 2>&1 || true # warm both keep-alive pools
  local t0; t0=$(ticks "$pid")
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "$url" >"$DIR/wrk.out" 2>&1
  local t1; t1=$(ticks "$pid")
  local reqs; reqs=$(awk '/requests in/ {print $1}' "$DIR/wrk.out")
  local rps; rps=$(awk '/^Requests\/sec/ {print $2}' "$DIR/wrk.out")
  local errs; errs=$(grep -E 'Non-2xx|Socket errors' "$DIR/wrk.out" | tr -s ' ' | tr '\n' ' ' || true)
  echo "$name: $rps req/s; CPU $(( (t1 - t0) * 1000 / hz )) ms for $reqs requests = $(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}') µs/request $errs"
}

for round in $(seq "$ROUNDS"); do
  echo "round $round (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  nginx -p "$DIR/proxy" -c "$DIR/proxy/nginx.conf" -e "$DIR/proxy/error.log" & local_master=$!; pids+=($local_master)
  sleep 0.5
  worker=$(pgrep -P "$local_master" | head -1)
  run nginx "$worker" "http://$NGINX/"
  kill "$local_master"; wait "$local_master" 2>/dev/null || true
  for bin in $A $B; do
    GOMAXPROCS=${PROCS:-1} taskset -c 0 "$bin" run -config "$DIR/wsalive.hcl" -log-level warn & proxy=$!; pids+=($proxy)
    for _ in $(seq 50); do curl -sf "http://$ADMIN/healthz" >/dev/null && break; sleep 0.1; done
    run "$(basename "$(dirname "$bin")")" "$proxy" "http://$LISTEN/"
    kill "$proxy"; wait "$proxy" 2>/dev/null || true
  done
done
