#!/usr/bin/env bash
# Resident memory of the service over a compressed run, and each day's audit bundle size.
#
#   scripts/bench-memory.sh [DAYS] [HOUR_MS] [OUT_DIR]     (defaults: 365 200 target/bench-memory)
#
# Runs `sit demo` (the service on the embedded simulator: 12 endpoints, 1 probe per endpoint,
# tier and hour) for DAYS simulated days at HOUR_MS real milliseconds per simulated hour,
# samples the process's resident set (VmRSS) every 5 s with the number of days published so
# far, and at the end prints the RSS at the first and every 30th day and the bundle sizes.
# Needs a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
days=${1:-365}
hour_ms=${2:-200}
out=${3:-target/bench-memory}
sit=./target/release/sit
[ -x "$sit" ] || { echo "build first: cargo build --release" >&2; exit 2; }
rm -rf "$out"
mkdir -p "$out"
data="$out/data"
"$sit" --data "$data" demo --days "$days" --hour-ms "$hour_ms" --per-hour 1 \
  >"$out/demo.out" 2>"$out/demo.err" &
pid=$!
echo "elapsed_s,days_published,rss_kb" >"$out/rss.csv"
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo "")
  [ -n "$rss" ] || break
  published=$( (ls "$data/archive" 2>/dev/null || true) | wc -l)
  echo "$(( $(date +%s) - start )),$published,$rss" >>"$out/rss.csv"
  sleep 5
done
wait "$pid" || { echo "sit demo failed; see $out/demo.err" >&2; exit 1; }
echo "sit demo: $days days at --hour-ms $hour_ms in $(( $(date +%s) - start )) s"
echo
echo "days published -> resident memory (MB), the highest sample seen at that count:"
awk -F, 'NR > 1 { if ($3 > max[$2]) max[$2] = $3 } END {
  for (d in max) if (d == 1 || d % 30 == 0 || d == '"$days"') printf "%d %.1f\n", d, max[d] / 1024 }' \
  "$out/rss.csv" | sort -n
echo
echo "audit bundle sizes (MB): first, median, last day; and the price files in the last:"
du -sm "$data"/archive/*/ | awk '{print $1}' >"$out/bundle-mb.txt"
sort -n "$out/bundle-mb.txt" | awk '{a[NR]=$1} END {print "min " a[1] ", median " a[int((NR+1)/2)] ", max " a[NR]}'
last=$(ls -d "$data"/archive/*/ | tail -1)
ls -l "$last"/price* "$last"/prices.json 2>/dev/null | awk '{print $5, $9}'
du -sh "$data/observations" "$data" 2>/dev/null
