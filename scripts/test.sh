#!/usr/bin/env bash
# Installs what the tests need on a Debian 12 machine, then lints and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
dpkg -s libsystemd-dev >/dev/null 2>&1 || need+=(libsystemd-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need+=(pkg-config)
dpkg -s libjemalloc-dev >/dev/null 2>&1 || need+=(libjemalloc-dev)
dpkg -s ripgrep >/dev/null 2>&1 || need+=(ripgrep)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v rsyslogd >/dev/null 2>&1 || need+=(rsyslog)
command -v logger >/dev/null 2>&1 || need+=(bsdutils)
[ -x /lib/systemd/systemd-journal-remote ] || need+=(systemd-journal-remote)
if [ ${#need[@]} -gt 0 ]; then
    echo "test.sh: installing ${need[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The worker integration tests need a real llama-server with a small model (Deploy/llm-worker.sh).
# Its first build takes minutes, so it runs while Swift builds; later runs reuse its cache.
worker_pid=""
if [ "${LOGTRIAGE_SKIP_WORKER:-0}" != 1 ]; then
    worker_out=$(mktemp)
    worker_err=$(mktemp)
    Deploy/llm-worker.sh start >"$worker_out" 2>"$worker_err" &
    worker_pid=$!
    trap 'Deploy/llm-worker.sh stop >/dev/null 2>&1 || true' EXIT
fi

echo "test.sh: swift format lint" >&2
swift format lint --strict -r Sources Tests Package.swift

swift build --build-tests
if [ -n "$worker_pid" ]; then
    echo "test.sh: waiting for the inference worker" >&2
    if ! wait "$worker_pid"; then
        cat "$worker_err" >&2
        echo "test.sh: the inference worker did not start (LOGTRIAGE_SKIP_WORKER=1 skips its tests)" >&2
        exit 1
    fi
    LOGTRIAGE_TEST_WORKER_URL=$(tail -1 "$worker_out")
    export LOGTRIAGE_TEST_WORKER_URL
fi
swift test --skip-build
