#!/usr/bin/env bash
# Installs what the tests need on a Debian 12 machine, then lints and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
dpkg -s libsystemd-dev >/dev/null 2>&1 || need+=(libsystemd-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need+=(pkg-config)
dpkg -s ripgrep >/dev/null 2>&1 || need+=(ripgrep)
if [ ${#need[@]} -gt 0 ]; then
    echo "test.sh: installing ${need[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "test.sh: swift format lint" >&2
swift format lint --strict -r Sources Tests Package.swift

swift build --build-tests
swift test --skip-build
