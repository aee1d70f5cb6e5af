#!/usr/bin/env python3
"""Syslog throughput benchmark for `logtriage run` (release build).

Sends RFC 5424 messages, octet-counted over TCP, at a fixed rate for a fixed time to a daemon
with the bundled rules, while reading its findings from stdout. Every 100th message is an SSH
password failure that carries its send time in the user name, so each finding yields one
event-to-finding latency. Prints messages sent and received, findings expected and seen, the
latency percentiles, the daemon's peak RSS, and then the UDP peak: datagrams blasted as fast as
one sender can, and how many the daemon received.

Usage: scripts/bench-syslog.py [--rate 50000] [--seconds 60] [--binary PATH]
Without --binary it builds the release binary the way hosts get it (static Swift runtime).
"""
import argparse, json, os, re, socket, subprocess, sys, tempfile, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--rate", type=int, default=50_000)
ap.add_argument("--seconds", type=int, default=60)
ap.add_argument("--binary")
ap.add_argument("--udp-seconds", type=int, default=5)
args = ap.parse_args()
if args.binary is None:
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    subprocess.run(["swift", "build", "-c", "release", "--static-swift-stdlib", "--product", "logtriage"],
                   check=True, stdout=subprocess.DEVNULL)
    args.binary = ".build/release/logtriage"

work = tempfile.mkdtemp(prefix="logtriage-bench-syslog-")
config = os.path.join(work, "logtriage.yaml")
with open(config, "w") as f:
    f.write(f"""sources:
  syslog:
    - listen: tcp://127.0.0.1:0
    - listen: udp://127.0.0.1:0
output:
  - stdout
state_directory: {work}/state
aggregate_window: 0s
""")

daemon = subprocess.Popen([args.binary, "run", "--config", config], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
ports = {}
while len(ports) < 2:
    line = daemon.stderr.readline().decode()
    if not line:
        sys.exit("daemon exited: " + daemon.stderr.read().decode())
    m = re.search(r"listening on (tcp|udp)://127\.0\.0\.1:(\d+)", line)
    if m:
        ports[m.group(1)] = int(m.group(2))

latencies, findings = [], [0]
stderr_lines = []

def read_findings():
    for raw in daemon.stdout:
        now = time.time()
        findings[0] += 1
        # Only single-event findings time one message; correlation findings carry old evidence.
        m = re.search(rb"user t(\d+)_(\d+) from", raw) if b'"count":1,' in raw and b'"class_uid":2004' in raw else None
        if m and raw.count(b"user t") <= 2:
            sent = int(m.group(1)) + int(m.group(2)) / 1e6
            latencies.append(now - sent)

def read_stderr():
    for raw in daemon.stderr:
        stderr_lines.append(raw.decode())

threading.Thread(target=read_findings, daemon=True).start()
threading.Thread(target=read_stderr, daemon=True).start()

def peak_rss_mb():
    with open(f"/proc/{daemon.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0

routine = "<86>1 2026-11-27T10:00:00Z web1 CRON 4242 - - pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"
sock = socket.create_connection(("127.0.0.1", ports["tcp"]))
sent = failures = 0
start = time.time()
batch = max(1, args.rate // 200)  # 5 ms of messages per write
while time.time() - start < args.seconds:
    frames = []
    for _ in range(batch):
        if sent % 100 == 0:
            t = time.time()
            msg = (f"<38>1 2026-11-27T10:00:00Z web1 sshd 4243 - - Failed password for invalid user "
                   f"t{int(t)}_{int((t % 1) * 1e6)} from 203.0.113.{failures % 250 + 1} port 22 ssh2")
            failures += 1
        else:
            msg = routine
        b = msg.encode()
        frames.append(str(len(b)).encode() + b" " + b)
        sent += 1
    sock.sendall(b"".join(frames))
    target = start + sent / args.rate
    delay = target - time.time()
    if delay > 0:
        time.sleep(delay)
elapsed = time.time() - start
sock.close()
time.sleep(2)
rss_tcp = peak_rss_mb()
tcp_findings = findings[0]

# UDP peak: one sender as fast as it can.
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp_sent = 0
payload = routine.encode()
ustart = time.time()
while time.time() - ustart < args.udp_seconds:
    for _ in range(1000):
        udp.sendto(payload, ("127.0.0.1", ports["udp"]))
    udp_sent += 1000
uelapsed = time.time() - ustart
time.sleep(2)
daemon.terminate()
daemon.wait(timeout=30)
time.sleep(0.5)
summary = next((l for l in stderr_lines if "stopped:" in l), "")
m = re.search(r"syslog: (\d+) received, (\d+) dropped", summary)
received, dropped = (int(m.group(1)), int(m.group(2))) if m else (-1, -1)
udp_received = received - sent if received >= 0 else -1

latencies.sort()
def pct(p):
    return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000 if latencies else float("nan")
print(f"tcp: {sent} messages in {elapsed:.1f} s ({sent / elapsed:,.0f} msg/s offered); {failures} failures sent, {tcp_findings} findings seen")
print(f"     event-to-finding latency p50 {pct(50):.1f} ms, p99 {pct(99):.1f} ms, max {pct(100):.1f} ms; peak RSS {rss_tcp:.1f} MB")
print(f"udp: {udp_sent} datagrams offered in {uelapsed:.1f} s ({udp_sent / uelapsed:,.0f}/s); daemon received {udp_received} ({udp_received / uelapsed:,.0f}/s), dropped on its queue {dropped}")
print(f"daemon: {summary.strip()}")
