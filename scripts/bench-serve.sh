#!/usr/bin/env bash
# wrk against `sit serve` /v1/index/t1/latest beside nginx serving the same JSON bytes from a
# file, in the same run, on the same machine. Needs the Debian packages wrk and nginx.
# Usage: scripts/bench-serve.sh [SECONDS]   (default 10, as in the brief: wrk -t1 -c16 -d10s)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
sit=${SIT:-$root/target/release/sit}
for t in wrk nginx curl; do command -v $t > /dev/null || { echo "$t not installed" >&2; exit 2; }; done
[ -x "$sit" ] || (cd "$root" && cargo build --release)
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; rm -rf "$work"' EXIT
SIT=$sit "$root/scripts/publisher-demo-data.sh" "$work" 2 > /dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sp=$(free_port); np=$(free_port)
"$sit" --data "$work/data" serve --addr "127.0.0.1:$sp" 2> "$work/serve.log" &
server=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$sp/healthz" > /dev/null && break; sleep 0.1; done
# nginx serves exactly the bytes sit serves.
curl -sf "http://127.0.0.1:$sp/v1/index/t1/latest" > "$work/latest.json"
chmod 755 "$work"; chmod 644 "$work/latest.json"
mkdir -p "$work/nginx"
cat > "$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  server {
    listen 127.0.0.1:$np;
    location = /v1/index/t1/latest { default_type application/json; alias $work/latest.json; }
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work"
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$np/v1/index/t1/latest" > /dev/null && break; sleep 0.1; done
cmp <(curl -s "http://127.0.0.1:$np/v1/index/t1/latest") "$work/latest.json"
run() { wrk -t1 -c16 -d"${secs}s" --latency "$1" > "$2"; }
# Warm both, then measure nginx, sit, nginx again (the machine is noisy: report both nginx runs).
wrk -t1 -c16 -d2s "http://127.0.0.1:$np/v1/index/t1/latest" > /dev/null
wrk -t1 -c16 -d2s "http://127.0.0.1:$sp/v1/index/t1/latest" > /dev/null
run "http://127.0.0.1:$np/v1/index/t1/latest" "$work/nginx1.txt"
run "http://127.0.0.1:$sp/v1/index/t1/latest" "$work/sit.txt"
run "http://127.0.0.1:$np/v1/index/t1/latest" "$work/nginx2.txt"
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
p99() { awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' "$1"; }
n1=$(rps "$work/nginx1.txt"); n2=$(rps "$work/nginx2.txt"); s=$(rps "$work/sit.txt")
echo "body: $(wc -c < "$work/latest.json") bytes; wrk -t1 -c16 -d${secs}s --latency; $(nproc) cores"
printf '%-8s %12s %10s\n' server req/s p99_ms
printf '%-8s %12s %10s\n' nginx "$n1" "$(p99 "$work/nginx1.txt")"
printf '%-8s %12s %10s\n' sit "$s" "$(p99 "$work/sit.txt")"
printf '%-8s %12s %10s\n' nginx "$n2" "$(p99 "$work/nginx2.txt")"
python3 - "$n1" "$n2" "$s" "$(p99 "$work/nginx1.txt")" "$(p99 "$work/nginx2.txt")" "$(p99 "$work/sit.txt")" <<'PY'
import sys
n1, n2, s, p1, p2, ps = map(float, sys.argv[1:])
n = (n1 + n2) / 2
print(f"ratio sit/nginx (mean of both nginx runs): {s / n:.2f}x   p99 sit - nginx: {ps - (p1 + p2) / 2:+.2f} ms")
PY
