#!/usr/bin/env python3
"""Writes a deterministic mixed auth/syslog file for the scan benchmark.

Usage: gen-bench-log.py OUT [LINES]   (default 1,000,000 lines)

About 80% is routine host traffic (sessions, cron, systemd, kernel firewall, DHCP, mail, sudo);
the rest is attack traffic as exposed hosts see it: bursts of password guessing, user-name
enumeration and pre-auth probes from a few hundred sources, plus rare account changes and crashes.
"""
import random, sys

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
rng = random.Random(7)
hosts = ["web1", "web2", "db1", "bastion"]
users = ["alice", "bob", "deploy", "backup", "ci"]
guessed = ["root", "admin", "test", "oracle", "ubuntu", "user", "postgres", "git", "pi", "guest"]
attackers = [f"{rng.randint(1,223)}.{rng.randint(0,255)}.{rng.randint(0,255)}.{rng.randint(1,254)}" for _ in range(300)]
clients = [f"10.{rng.randint(0,255)}.{rng.randint(0,255)}.{rng.randint(1,254)}" for _ in range(3000)]

benign = [
    (10, "sshd[{pid}]: Accepted publickey for {user} from {client} port {port} ssh2: ED25519 SHA256:AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    (10, "sshd[{pid}]: pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)"),
    (8, "sshd[{pid}]: Received disconnect from {client} port {port}:11: disconnected by user"),
    (12, "CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"),
    (10, "CRON[{pid}]: (root) CMD (   cd / && run-parts --report /etc/cron.hourly)"),
    (12, "systemd[1]: Started Session {pid} of User {user}."),
    (8, "systemd-logind[{pid}]: New session {pid} of user {user}."),
    (8, "kernel: [{pid}.123456] [UFW BLOCK] IN=eth0 OUT= MAC=00:11:22:33:44:55 SRC={client} DST=10.0.0.1 LEN=60 PROTO=TCP SPT={port} DPT=3389"),
    (6, "dhclient[{pid}]: DHCPREQUEST for 10.0.0.5 on eth0 to 10.0.0.1 port 67"),
    (6, "postfix/smtpd[{pid}]: connect from unknown[{client}]"),
    (5, "sudo:   {user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/apt update"),
    (5, "systemd[1]: Starting Daily apt download activities..."),
]
attack = [
    (55, "sshd[{pid}]: Failed password for {inv}{target} from {ip} port {port} ssh2"),
    (20, "sshd[{pid}]: Invalid user {target} from {ip} port {port}"),
    (15, "sshd[{pid}]: Connection closed by authenticating user {target} {ip} port {port} [preauth]"),
    (10, "sshd[{pid}]: Did not receive identification string from {ip} port {port}"),
]
rare = [
    "useradd[{pid}]: new user: name=svc{pid}, UID=1003, GID=1003, home=/home/svc, shell=/bin/bash",
    "kernel: [{pid}.5] app[{pid}]: segfault at 0 ip 00007f rsp 00007ffd error 4 in libc.so.6",
    "sudo:   {user} : 1 incorrect password attempt ; TTY=pts/1 ; PWD=/home/{user} ; USER=root ; COMMAND=/bin/ls",
]

def pick(table):
    return rng.choices([t for _, t in table], [w for w, _ in table])[0]

with open(out, "w") as f:
    sec = 0
    burst = 0
    ip = target = host = None
    for i in range(n):
        sec += rng.random() < 0.2
        if burst == 0 and rng.random() < 0.008:
            burst, ip, target, host = rng.randint(5, 40), rng.choice(attackers), rng.choice(guessed), rng.choice(hosts)
        line_host = rng.choice(hosts)
        if burst > 0 and rng.random() < 0.6:
            burst -= 1
            line_host = host
            t = pick(attack)
            if rng.random() < 0.3:
                target = rng.choice(guessed)
        elif rng.random() < 0.0005:
            t = rng.choice(rare)
        else:
            t = pick(benign)
        line = t.format(pid=rng.randint(100, 99999), user=rng.choice(users), client=rng.choice(clients),
                        port=rng.randint(1024, 65535), ip=ip, target=target,
                        inv="" if target == "root" else "invalid user ")
        h, m, s = (sec // 3600) % 24, (sec // 60) % 60, sec % 60
        f.write(f"Nov {1 + sec // 86400 % 28:2d} {h:02d}:{m:02d}:{s:02d} {line_host} {line}\n")
