#!/usr/bin/env bash
# Compares the scan time of two logtriage binaries on the benchmark file (see bench.sh): both
# run at the same time, one per core, and swap cores every round, so that both see the same
# phases of a machine whose speed drifts. Prints each round and the median ratio B/A.
# SOLO=1 runs them one after the other on core 0 instead, in alternating order: the conditions
# of bench.sh, where a scan has the shared cache to itself (the two modes can disagree).
# Usage: [ROUNDS=N] [SOLO=1] scripts/bench-compare.sh BINARY_A BINARY_B [LINES]
# A binary built elsewhere finds the bundled rules through LOGTRIAGE_RULES_DIR (set here to
# this checkout's Rules/ unless it is set already).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
a=$(realpath "$1")
b=$(realpath "$2")
lines=${3:-1000000}
cd "$(dirname "$0")/.."
solo=${SOLO:-0}
[ "$solo" = 1 ] || [ "$(nproc)" -ge 2 ] || { echo "bench-compare.sh: needs two cores (or SOLO=1)" >&2; exit 1; }
export LOGTRIAGE_RULES_DIR=${LOGTRIAGE_RULES_DIR:-$PWD/Rules}
log=bench-data/mixed-$lines.log
mkdir -p bench-data
[ -f "$log" ] || python3 scripts/gen-bench-log.py "$log" "$lines"
rules=(--rules Rules/linux)
[ -d ../shared/sigma/linux-rules ] && rules+=(--rules ../shared/sigma/linux-rules)
rounds=${ROUNDS:-8}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One timed scan: core, binary, file to write the seconds to. A failed scan stops the comparison.
timed() {
    local start end
    start=$(date +%s.%N)
    if ! taskset -c "$1" "$2" scan "${rules[@]}" "$log" >/dev/null 2>"$3.err"; then
        echo "bench-compare.sh: $2 failed:" >&2
        tail -5 "$3.err" >&2
        return 1
    fi
    end=$(date +%s.%N)
    echo "$start $end" >"$3"
}

times_a=()
times_b=()
for ((r = 0; r < rounds; r++)); do
    core_a=$((r % 2))
    if [ "$solo" = 1 ]; then
        # One at a time on core 0; B goes first in odd rounds.
        if ((r % 2)); then
            timed 0 "$b" "$tmp/b"
            timed 0 "$a" "$tmp/a"
        else
            timed 0 "$a" "$tmp/a"
            timed 0 "$b" "$tmp/b"
        fi
        where="one at a time on core 0"
    else
        timed "$core_a" "$a" "$tmp/a" &
        pid_a=$!
        timed $((1 - core_a)) "$b" "$tmp/b" &
        pid_b=$!
        wait "$pid_a"
        wait "$pid_b"
        where="A on core $core_a, B on core $((1 - core_a))"
    fi
    ta=$(awk '{printf "%.3f", $2 - $1}' "$tmp/a")
    tb=$(awk '{printf "%.3f", $2 - $1}' "$tmp/b")
    times_a+=("$ta")
    times_b+=("$tb")
    echo "round $((r + 1)): A ${ta} s, B ${tb} s ($where)"
done

python3 - "$lines" "${times_a[*]}" "${times_b[*]}" <<'PY'
import statistics, sys
lines = int(sys.argv[1])
a = [float(x) for x in sys.argv[2].split()]
b = [float(x) for x in sys.argv[3].split()]
ratios = [y / x for x, y in zip(a, b)]
print(f"A: median {statistics.median(a):.3f} s ({lines / statistics.median(a):,.0f} lines/s), best {min(a):.3f} s")
print(f"B: median {statistics.median(b):.3f} s ({lines / statistics.median(b):,.0f} lines/s), best {min(b):.3f} s")
print(f"B/A per round: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
      f"B faster in {sum(1 for x in ratios if x < 1)} of {len(ratios)} rounds")
PY
