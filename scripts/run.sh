#!/usr/bin/env bash
# Builds logtriage and runs the daemon on its embedded defaults (`logtriage config defaults`):
# the local journal from its tail, syslog on udp:// and tcp://127.0.0.1:5514, the bundled rules,
# built-in triage, findings on standard output, state in /var/lib/logtriage.
# Installs the build dependencies (libsystemd-dev, pkg-config, libjemalloc-dev) on Debian when missing.
# Extra arguments go to `logtriage run` (for example --config Deploy/logtriage.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
need=()
dpkg -s libsystemd-dev >/dev/null 2>&1 || need+=(libsystemd-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need+=(pkg-config)
dpkg -s libjemalloc-dev >/dev/null 2>&1 || need+=(libjemalloc-dev)
if [ ${#need[@]} -gt 0 ]; then
    echo "run.sh: installing ${need[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

swift build --product logtriage >&2
bin=$(swift build --show-bin-path)/logtriage
cat >&2 <<'HINT'
run.sh: logtriage is running on its embedded defaults; findings appear below as JSON lines.
run.sh: try it from another terminal:
          logger -n 127.0.0.1 -P 5514 -t sshd 'Failed password for root from 203.0.113.9 port 22 ssh2'
        Ctrl-C stops it.
HINT
# Root (or sudo) reads the whole journal and writes the state directory /var/lib/logtriage.
exec $SUDO "$bin" run "$@"
