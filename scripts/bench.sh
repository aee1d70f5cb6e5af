#!/usr/bin/env bash
# Scan benchmark: release build, a generated 1,000,000-line mixed auth/syslog file, the bundled
# pack plus SigmaHQ's Linux rules. Prints lines/s, MB/s, peak RSS, and ripgrep over the same file
# with the rules' literal patterns for comparison. Usage: scripts/bench.sh [LINES]
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
data=bench-data
mkdir -p "$data"
log="$data/mixed-$lines.log"
[ -f "$log" ] || python3 scripts/gen-bench-log.py "$log" "$lines"
sigma=../shared/sigma/linux-rules
rules=(--rules Rules/linux)
[ -d "$sigma" ] && rules+=(--rules "$sigma")
swift build -c release --static-swift-stdlib --product logtriage >/dev/null
bin=.build/release/logtriage
command -v rg >/dev/null || { echo "bench.sh: ripgrep missing (apt-get install ripgrep)" >&2; exit 1; }
mb=$(python3 -c "import os;print(os.path.getsize('$log')/1048576)")

# One core: taskset pins the scan; /usr/bin/time -v reports peak RSS.
start=$(date +%s.%N)
/usr/bin/time -v taskset -c 0 "$bin" scan "${rules[@]}" "$log" >/dev/null 2>"$data/scan.err" || { cat "$data/scan.err"; exit 1; }
end=$(date +%s.%N)
secs=$(python3 -c "print($end-$start)")
rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$data/scan.err")
grep '^logtriage: scanned' "$data/scan.err"

"$bin" rules literals "${rules[@]/--rules/}" 2>/dev/null > "$data/literals.txt" || true
start=$(date +%s.%N)
taskset -c 0 rg -c -F -i -f "$data/literals.txt" "$log" >/dev/null || true
end=$(date +%s.%N)
rgsecs=$(python3 -c "print($end-$start)")

python3 - "$lines" "$mb" "$secs" "$rss" "$rgsecs" "$(wc -l < "$data/literals.txt")" <<'PY'
import sys
lines, mb, secs, rss, rg, nlit = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
print(f"scan:    {lines} lines, {mb:.1f} MB in {secs:.2f} s = {lines/secs:,.0f} lines/s, {mb/secs:.1f} MB/s, peak RSS {rss/1024:.1f} MB")
print(f"ripgrep: rg -c -F -i with {nlit} literals in {rg:.2f} s = {lines/rg:,.0f} lines/s")
print(f"ratio:   scan time / rg time = {secs/rg:.2f}")
PY
