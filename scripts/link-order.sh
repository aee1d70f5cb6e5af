#!/usr/bin/env bash
# Regenerates scripts/link-order.txt, the call graph of a scan's per-line path: one line per
# caller and callee, with the number of calls, measured by callgrind over 100,000 lines of the
# benchmark file. Release builds hand it to the linker (lld's --call-graph-ordering-file), which
# lays functions out next to their hottest callers: the per-line path then spans fewer cache
# lines and pages of code (see "Code layout" in the README).
# Run it after changes to the per-line path; a stale file costs speed, never correctness.
# Needs valgrind (apt-get install valgrind).
# Usage: scripts/link-order.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "link-order.sh: valgrind missing (apt-get install valgrind)" >&2; exit 1; }
lines=100000
log=bench-data/mixed-$lines.log
mkdir -p bench-data
[ -f "$log" ] || python3 scripts/gen-bench-log.py "$log" "$lines"
rules=(--rules Rules/linux)
[ -d ../shared/sigma/linux-rules ] && rules+=(--rules ../shared/sigma/linux-rules)
swift build -c release --static-swift-stdlib --product logtriage >/dev/null
bin=$(swift build -c release --static-swift-stdlib --show-bin-path 2>/dev/null)/logtriage
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Valgrind cannot read the DWARF this toolchain writes; symbols are all it needs.
strip --strip-debug -o "$tmp/logtriage" "$bin"
# Only the scan loop: rule loading runs once and would only add noise.
LOGTRIAGE_RULES_DIR=$PWD/Rules valgrind --tool=callgrind --demangle=no --collect-atstart=no \
    --toggle-collect='$s6Daemon12ScanPipelineV3run6inputs4emit10diagnostic*tF' \
    --callgrind-out-file="$tmp/callgrind.out" "$tmp/logtriage" scan "${rules[@]}" "$log" >/dev/null 2>"$tmp/err" ||
    { cat "$tmp/err" >&2; exit 1; }

python3 - "$tmp/callgrind.out" > scripts/link-order.txt <<'PY'
import collections, re, sys
# Callgrind's format: "fn=(id) name" opens a function (the name only at its first use),
# "cfn=" names a callee, "calls=N ..." counts calls to it.
names, calls = {}, collections.Counter()
def name(text):
    m = re.match(r"\((\d+)\)(?: (.*))?", text)
    if not m:
        return text
    if m.group(2) is not None:
        names[m.group(1)] = m.group(2)
    return names[m.group(1)]
caller = callee = None
for line in open(sys.argv[1]):
    if line.startswith("fn="):
        caller = name(line[3:].rstrip("\n"))
    elif line.startswith("cfn="):
        callee = name(line[4:].rstrip("\n"))
    elif line.startswith("calls="):
        calls[(caller, callee)] += int(line[6:].split()[0])
# A function that recursion split in two ("f'2") is one symbol. Calls made less than once per
# thousand lines do not matter to the layout.
merged = collections.Counter()
for (a, b), n in calls.items():
    a, b = re.sub(r"'\d+$", "", a), re.sub(r"'\d+$", "", b)
    if a != b:
        merged[(a, b)] += n
for (a, b), n in sorted(merged.items(), key=lambda e: (-e[1], e[0])):
    if n >= 100:
        print(a, b, n)
PY
# Nothing collected means the toggle above no longer names the scan loop (a renamed function):
# an empty file would quietly drop the layout.
if [ ! -s scripts/link-order.txt ]; then
    git checkout -q -- scripts/link-order.txt 2>/dev/null || true
    echo "link-order.sh: callgrind saw no calls; update --toggle-collect to ScanPipeline.run's symbol (nm | grep ScanPipelineV3run)" >&2
    exit 1
fi
echo "link-order.sh: wrote scripts/link-order.txt ($(wc -l < scripts/link-order.txt) calls)" >&2
