#!/usr/bin/env bash
# Scan benchmark: release build, a generated 1,000,000-line mixed auth/syslog file, the bundled
# pack plus SigmaHQ's Linux rules. Prints lines/s, MB/s, peak RSS, and ripgrep over the same file
# with the rules' literal patterns for comparison, over ROUNDS interleaved rounds (default 3).
# Usage: [ROUNDS=N] scripts/bench.sh [LINES]
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
# The allocator matters by a few percent (README, "Memory allocator").
if ldd "$bin" | grep -q libjemalloc; then
    allocator=jemalloc
elif dpkg -s libjemalloc-dev >/dev/null 2>&1; then
    # SwiftPM keeps the manifest's answer from a build made before jemalloc was installed.
    allocator="glibc malloc (libjemalloc-dev is installed now, but the build predates it: swift package reset, then run again)"
else
    allocator="glibc malloc (libjemalloc-dev is not installed)"
fi
command -v rg >/dev/null || { echo "bench.sh: ripgrep missing (apt-get install ripgrep)" >&2; exit 1; }
mb=$(python3 -c "import os;print(os.path.getsize('$log')/1048576)")

# One core: taskset pins the scan; /usr/bin/time -v reports peak RSS. Scan and rg alternate for
# ROUNDS rounds (default 3), so that both see the same phases of a machine whose speed drifts.
rounds=${ROUNDS:-3}
"$bin" rules literals "${rules[@]/--rules/}" 2>/dev/null > "$data/literals.txt" || true
times=()
rgtimes=()
for ((r = 0; r < rounds; r++)); do
    start=$(date +%s.%N)
    /usr/bin/time -v taskset -c 0 "$bin" scan "${rules[@]}" "$log" >/dev/null 2>"$data/scan.err" || { cat "$data/scan.err"; exit 1; }
    end=$(date +%s.%N)
    times+=("$(python3 -c "print($end-$start)")")
    start=$(date +%s.%N)
    taskset -c 0 rg -c -F -i -f "$data/literals.txt" "$log" >/dev/null || true
    end=$(date +%s.%N)
    rgtimes+=("$(python3 -c "print($end-$start)")")
done
rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$data/scan.err")
grep '^logtriage: scanned' "$data/scan.err"
echo "allocator: $allocator"

python3 - "$lines" "$mb" "$rss" "$(wc -l < "$data/literals.txt")" "${times[*]}" "${rgtimes[*]}" <<'PY'
import statistics, sys
lines, mb, rss, nlit = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
scan = [float(x) for x in sys.argv[5].split()]
rg = [float(x) for x in sys.argv[6].split()]
best, median = min(scan), statistics.median(scan)
print(f"scan:    {lines} lines, {mb:.1f} MB; {len(scan)} rounds: " + ", ".join(f"{t:.2f}" for t in scan) + " s")
print(f"         best {lines/best:,.0f} lines/s ({mb/best:.1f} MB/s), median {lines/median:,.0f} lines/s, peak RSS {rss/1024:.1f} MB")
print(f"ripgrep: rg -c -F -i with {nlit} literals: best {min(rg):.2f} s = {lines/min(rg):,.0f} lines/s, median {statistics.median(rg):.2f} s")
ratios = [s / r for s, r in zip(scan, rg)]
print(f"ratio:   scan time / rg time in the same round: " + ", ".join(f"{x:.2f}" for x in ratios) + f" (median {statistics.median(ratios):.2f})")
PY
