#!/usr/bin/env python3
"""Writes a deterministic mixed auth/syslog file for the scan benchmark: N lines (default 1,000,000)."""
import random, sys

n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
out = sys.argv[1]
rng = random.Random(7)
hosts = ["web1", "web2", "db1", "bastion"]
users = ["root", "admin", "alice", "bob", "deploy", "oracle", "test", "ubuntu"]
months = ["Nov"]
templates = [
    (30, "sshd[{pid}]: Failed password for {inv}{user} from {ip} port {port} ssh2"),
    (10, "sshd[{pid}]: Invalid user {user} from {ip} port {port}"),
    (8, "sshd[{pid}]: Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:abcdefghijklmnop"),
    (8, "sshd[{pid}]: Connection closed by {ip} port {port} [preauth]"),
    (6, "sshd[{pid}]: pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)"),
    (6, "CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"),
    (5, "sudo:   {user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/apt update"),
    (2, "sudo:   {user} : 1 incorrect password attempt ; TTY=pts/1 ; PWD=/home/{user} ; USER=root ; COMMAND=/bin/ls"),
    (8, "systemd[1]: Started Session {pid} of User {user}."),
    (5, "kernel: [{pid}.123456] IN=eth0 OUT= MAC=00:11:22:33:44:55 SRC={ip} DST=10.0.0.1 LEN=60 PROTO=TCP DPT=22"),
    (5, "systemd-logind[{pid}]: New session {pid} of user {user}."),
    (4, "dhclient[{pid}]: DHCPREQUEST for 10.0.0.5 on eth0 to 10.0.0.1 port 67"),
    (3, "postfix/smtpd[{pid}]: connect from unknown[{ip}]"),
    (1, "useradd[{pid}]: new user: name={user}2, UID=1003, GID=1003, home=/home/{user}2, shell=/bin/bash"),
    (1, "kernel: [{pid}.5] app[{pid}]: segfault at 0 ip 00007f rsp 00007ffd error 4 in libc.so.6"),
]
weights = [w for w, _ in templates]
with open(out, "w") as f:
    sec = 0
    for i in range(n):
        sec += rng.random() < 0.3
        h, m, s = (sec // 3600) % 24, (sec // 60) % 60, sec % 60
        _, t = rng.choices(templates, weights)[0]
        line = t.format(pid=rng.randint(100, 99999), user=rng.choice(users),
                        inv="invalid user " if rng.random() < 0.3 else "",
                        ip=f"{rng.randint(1,223)}.{rng.randint(0,255)}.{rng.randint(0,255)}.{rng.randint(1,254)}",
                        port=rng.randint(1024, 65535))
        f.write(f"Nov {1 + sec // 86400 % 28:2d} {h:02d}:{m:02d}:{s:02d} {rng.choice(hosts)} {line}\n")
