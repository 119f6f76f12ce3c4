#!/usr/bin/env bash
# Fill DIR with a small published history: `sit demo` probes and publishes DAYS simulated days
# (signed with the demo key in DIR/data/demo-key/), then one outage day after them is
# published explicitly as CONTINGENCY. Used by the screenshot and the serve benchmark.
# Usage: scripts/publisher-demo-data.sh DIR [DAYS]
set -euo pipefail
dir=${1:?usage: $0 DIR [DAYS]}
days=${2:-4}
sit=${SIT:-$(dirname "$0")/../target/release/sit}
mkdir -p "$dir"
"$sit" --data "$dir/data" demo --days "$days" --hour-ms 300 > "$dir/demo.log"
d=$(date -u -d "2026-01-05 + $days day" +%F)
"$sit" --data "$dir/data" publish --date "$d" --key "$dir/data/demo-key/signing-key.pem" --allow-empty
