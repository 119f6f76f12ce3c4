#!/usr/bin/env bash
# Render the publisher's human page in headless Chromium and save a screenshot.
# Needs the Debian package `chromium`. Usage: scripts/screenshot.sh [OUT.png]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/docs/publisher-page.png}
sit=${SIT:-$root/target/release/sit}
command -v chromium > /dev/null || { echo "chromium not installed (apt-get install chromium)" >&2; exit 2; }
[ -x "$sit" ] || (cd "$root" && cargo build --release)
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
SIT=$sit "$root/scripts/publisher-demo-data.sh" "$work" 4
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$sit" --data "$work/data" serve --addr "127.0.0.1:$port" 2> "$work/serve.log" &
server=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break; sleep 0.1; done
curl -s "http://127.0.0.1:$port/" | grep -q '<svg' || { echo "page has no SVG chart" >&2; exit 1; }
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,2000 \
  --screenshot="$out" "http://127.0.0.1:$port/" 2> "$work/chromium.log"
[ -s "$out" ] || { echo "no screenshot written" >&2; cat "$work/chromium.log" >&2; exit 1; }
echo "screenshot: $out"
