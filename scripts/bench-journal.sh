#!/usr/bin/env bash
# Journal read benchmark: a 1,000,000-entry journal written by systemd-journal-remote from the
# scan benchmark's generated log (cached in bench-data/), read by the journal source (alone and
# with the bundled rules) and by `journalctl -o export`, in the same run. Release build.
# Usage: scripts/bench-journal.sh [ENTRIES]
set -euo pipefail
cd "$(dirname "$0")/.."
entries=${1:-1000000}
data=bench-data
mkdir -p "$data"
log="$data/mixed-$entries.log"
dir="$data/journal-$entries"
[ -f "$log" ] || python3 scripts/gen-bench-log.py "$log" "$entries"
if [ ! -d "$dir" ]; then
    mkdir -p "$dir.tmp"
    # Each syslog line becomes an entry with the fields journald stores for one from /dev/log.
    python3 - "$log" <<'PY' | /lib/systemd/systemd-journal-remote --output="$dir.tmp/bench.journal" - >/dev/null 2>&1
import re, sys
line_re = re.compile(r'^(\S+ +\d+ [\d:]+) (\S+) ([^\[: ]+)(?:\[(\d+)\])?: ?(.*)$')
boot = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
t = 1_700_000_000_000_000
out = sys.stdout
buf = []
with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
    for n, line in enumerate(f):
        m = line_re.match(line.rstrip("\n"))
        if not m:
            continue
        stamp, host, ident, pid, msg = m.groups()
        pid = pid or "1"
        fac = 10 if ident in ("sshd", "sudo", "su", "CRON", "systemd-logind") else 3
        buf.append(f"__REALTIME_TIMESTAMP={t + n * 1000}\n__MONOTONIC_TIMESTAMP={1_000_000 + n * 1000}\n_BOOT_ID={boot}\n"
                   f"_MACHINE_ID=8c2e1f0a9b7d4c3e2f1a0b9c8d7e6f5a\n_HOSTNAME={host}\n_TRANSPORT=syslog\nPRIORITY=6\n"
                   f"SYSLOG_FACILITY={fac}\nSYSLOG_IDENTIFIER={ident}\nSYSLOG_PID={pid}\n_PID={pid}\n_UID=0\n_GID=0\n"
                   f"_COMM={ident.lower()[:15]}\nSYSLOG_TIMESTAMP={stamp} \nMESSAGE={msg}\n\n")
        if len(buf) >= 10000:
            out.write("".join(buf)); buf.clear()
out.write("".join(buf))
PY
    mv "$dir.tmp" "$dir"
fi
swift build -c release --static-swift-stdlib --product logtriage >/dev/null
taskset -c 0 .build/release/logtriage bench journal --directory "$dir"
