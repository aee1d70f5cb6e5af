import Daemon
import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The journal source of `logtriage run`, against journals written by systemd-journal-remote and
/// by a real systemd-journald. Part of the serialized live suite: the latency checks must not
/// compete with the other live tests for the two cores.
extension LiveRunTests {
    static func journalDaemon(_ journal: String, extra: String = "") throws -> Daemon {
        try Daemon(extra: extra, sources: "  journal: \(journal)")
    }

    @Test(
        "entries appended to a journal by systemd-journal-remote become findings within a second, across a boot change",
        .enabled(if: JournalWriter.available))
    func journalRemoteLive() throws {
        let dir = NSTemporaryDirectory() + "logtriage-jr-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Something is already there: the daemon starts at the tail and must not report it.
        try JournalWriter.write([JournalWriter.sshd("Invalid user old from 198.51.100.99 port 22")], to: dir + "/remote.journal")
        let live = try JournalWriter.Live(file: dir + "/remote.journal")
        defer { live.close() }
        let d = try Self.journalDaemon("{directory: \(dir)}")
        try d.start()
        usleep(700_000)
        try live.append(JournalWriter.sshd("Failed password for root from 203.0.113.31 port 22 ssh2", pid: 31))
        var waited = try d.waitFor(count: 1, seconds: 5)
        #expect(waited < 1.0, "the finding took \(waited) s")
        // A reboot: entries with a new boot id (journalctl -f would filter them out; we must not).
        try live.append(
            JournalWriter.sshd("Invalid user mallory from 203.0.113.32 port 22", pid: 32, boot: "0badb00f0badb00f0badb00f0badb00f"))
        waited = try d.waitFor(count: 2, seconds: 5)
        #expect(waited < 1.0, "the finding after the boot change took \(waited) s")
        #expect(d.stop() == 0)
        let messages = try d.written().compactMap { $0["message"] as? String }
        #expect(messages.count == 2, "\(messages)")
        #expect(messages.contains { $0.contains("203.0.113.31") })
        #expect(messages.contains { $0.contains("203.0.113.32") })
        #expect(!messages.contains { $0.contains("198.51.100.99") }, "a first start begins at the tail")
        let src = try #require(((try d.written().first?["evidences"] as? [[String: Any]])?.first?["src"] as? [String: Any]))
        #expect((src["cursor"] as? String)?.hasPrefix("b=\(JournalWriter.bootID);m=") == true, "\(src)")
    }

    @Test(
        "restart resumes after the committed cursor; a vacuumed cursor raises a gap finding and reading goes on",
        .enabled(if: JournalWriter.available))
    func journalResumeAndGap() throws {
        let dir = NSTemporaryDirectory() + "logtriage-jg-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let d = try Self.journalDaemon("{directory: \(dir), since: all}")
        try JournalWriter.write([JournalWriter.sshd("Invalid user one from 198.51.100.1 port 22", pid: 1)], to: dir + "/a.journal")
        try d.start()
        _ = try d.waitFor(count: 1, seconds: 5)
        #expect(d.stop() == 0)
        // Written while the daemon is down: read after the restart, the first entry not again.
        try JournalWriter.write([JournalWriter.sshd("Invalid user two from 198.51.100.2 port 22", pid: 2)], to: dir + "/a.journal")
        try d.start()
        _ = try d.waitFor(count: 2, seconds: 5)
        #expect(d.stop() == 0)
        var messages = try d.written().compactMap { $0["message"] as? String }
        #expect(messages.count == 2, "\(messages)")
        #expect(messages.filter { $0.contains("198.51.100.1") }.count == 1)
        // Vacuumed while down: the committed entry is gone with its file.
        try FileManager.default.removeItem(atPath: dir + "/a.journal")
        try JournalWriter.write([JournalWriter.sshd("Invalid user three from 198.51.100.3 port 22", pid: 3)], to: dir + "/b.journal")
        try d.start()
        _ = try d.waitFor(count: 4, seconds: 5)
        #expect(d.stop() == 0)
        let found = try d.written()
        messages = found.compactMap { $0["message"] as? String }
        #expect(messages.count == 4, "\(messages)")
        #expect(messages.contains { $0.contains("198.51.100.3") })
        let gap = found.first { (($0["finding_info"] as? [String: Any])?["title"] as? String)?.contains("Journal entries lost") == true }
        #expect(gap != nil, "\(messages)")
        #expect(gap?["severity_id"] as? Int == 3)
        #expect(Self.diagnostics(d).contains("no longer in the journal"))
    }

    /// A journald namespace instance of our own: real journald, isolated from the machine's.
    final class Journald {
        let namespace = "lt\(UUID().uuidString.prefix(6).lowercased())"
        let process = Process()
        var devLog: String { "/run/systemd/journal.\(namespace)/dev-log" }

        static var possible: Bool {
            getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/lib/systemd/systemd-journald")
                && FileManager.default.fileExists(atPath: "/etc/machine-id")
        }

        init() throws {
            try FileManager.default.createDirectory(atPath: "/run/systemd/journal.\(namespace)", withIntermediateDirectories: true)
            process.executableURL = URL(fileURLWithPath: "/lib/systemd/systemd-journald")
            process.arguments = [namespace]
            var env = ProcessInfo.processInfo.environment
            env["NOTIFY_SOCKET"] = nil
            process.environment = env
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            for _ in 0..<100 where !FileManager.default.fileExists(atPath: devLog) { usleep(50_000) }
        }

        func stop() {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            let machine =
                (try? String(contentsOfFile: "/etc/machine-id", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            try? FileManager.default.removeItem(atPath: "/var/log/journal/\(machine).\(namespace)")
            try? FileManager.default.removeItem(atPath: "/run/systemd/journal.\(namespace)")
        }
    }

    @Test(
        "audit records as journald stores them (no EOE) become process_creation and auditd findings within a second",
        .enabled(if: JournalWriter.available))
    func auditRecordsFromTheJournal() throws {
        let dir = NSTemporaryDirectory() + "logtriage-ja-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let live = try JournalWriter.Live(file: dir + "/remote.journal")
        defer { live.close() }
        try live.append(JournalWriter.sshd("Accepted publickey for alice from 198.51.100.7 port 22 ssh2"))
        let linux = AuditRuleTests.sigmaLinux
        let d = try Self.journalDaemon(
            "{directory: \(dir), match: rules}", extra: "rules: [\(linux)/process_creation, \(linux)/auditd/execve]")
        try d.start()
        usleep(700_000)
        let exec = AuditExec(exe: "/usr/bin/chattr", argv: ["chattr", "-i", "/etc/passwd"], pid: 4321, ppid: 4300)
        let entries = exec.lines(serial: 9001, time: Int(Date().timeIntervalSince1970)).compactMap { JournalWriter.audit($0) }
        #expect(entries.count == 5, "journald keeps SYSCALL, EXECVE, CWD, PATH and PROCTITLE, not EOE")
        try live.append(entries.reduce(Data(), +))
        let waited = try d.waitFor(count: 2, seconds: 5)
        #expect(waited < 1.0, "the findings took \(waited) s: \(Self.diagnostics(d))")
        #expect(d.stop() == 0)
        let found = try d.written()
        let rules = Set(found.compactMap { (($0["finding_info"] as? [String: Any])?["analytic"] as? [String: Any])?["uid"] as? String })
        // SigmaHQ's process_creation and auditd rules for removing the immutable attribute, unchanged.
        #expect(rules == ["34979410-e4b5-4e5d-8cfb-389fdff05c12", "a5b977d6-8a81-4475-91b9-49dbfcd941f7"], "\(found)")
        for f in found {
            #expect(((f["device"] as? [String: Any])?["hostname"] as? String) == "web1")
            let observables = (f["observables"] as? [[String: Any]] ?? []).map { "\($0["name"] ?? "")=\($0["value"] ?? "")" }
            #expect(observables.contains("process.name=chattr"), "\(observables)")
            // uid 1000 is someone on this machine, but the records are web1's: no name from here.
            #expect(!observables.contains { $0.hasPrefix("user.name=") }, "\(observables)")
            let data = ((f["evidences"] as? [[String: Any]])?.first?["data"] as? [String: Any]) ?? [:]
            #expect((data["MESSAGE"] as? String)?.hasPrefix("type=SYSCALL ") == true, "\(data)")
            #expect(data["process.command_line"] as? String == "chattr -i /etc/passwd", "\(data)")
            #expect(data["process.parent.pid"] as? String == "4300", "\(data)")
        }
    }

    @Test("a real systemd-journald: logger through its /dev/log becomes a finding within a second", .enabled(if: Journald.possible))
    func realJournald() throws {
        let journald = try Journald()
        defer { journald.stop() }
        try #require(FileManager.default.fileExists(atPath: journald.devLog), "journald did not create \(journald.devLog)")
        // The namespace journal exists once the first entry is written.
        _ = try Fixtures.run("/usr/bin/logger", ["-u", journald.devLog, "-t", "logtriage-test", "journal opened"])
        let d = try Self.journalDaemon("{namespace: \(journald.namespace)}")
        try d.start()
        usleep(700_000)
        let (status, _, err) = try Fixtures.run(
            "/usr/bin/logger",
            [
                "-u", journald.devLog, "-t", "sshd", "-p", "authpriv.notice",
                "Failed password for invalid user zed from 203.0.113.41 port 22 ssh2",
            ])
        #expect(status == 0, "\(err)")
        let waited = try d.waitFor(count: 1, seconds: 5)
        #expect(waited < 1.0, "the finding took \(waited) s")
        #expect(d.stop() == 0)
        let f = try #require(try d.written().first, "\(Self.diagnostics(d))")
        let evidence = try #require((f["evidences"] as? [[String: Any]])?.first?["data"] as? [String: Any])
        #expect(evidence["_TRANSPORT"] as? String == "syslog")
        #expect(evidence["SYSLOG_FACILITY"] as? String == "10")
        #expect(evidence["_PID"] != nil, "journald's trusted fields are there")
    }
}

extension LiveRunTests {
    @Test("under journald (JOURNAL_STREAM names our stderr) every log line carries an sd-daemon priority prefix")
    func journalStreamPrefixes() throws {
        let d = try Daemon(extra: "rules: [/nonexistent-rules-dir, \(Fixtures.rulesDirectory)/linux]")
        var st = stat()
        #expect(stat(d.stderr, &st) == 0)
        try d.start(environment: ["JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino)"])
        usleep(500_000)
        #expect(d.stop() == 0)
        let lines = Self.diagnostics(d).split(separator: "\n").map(String.init)
        #expect(!lines.isEmpty)
        for line in lines { #expect(line.hasPrefix("<"), "\(line)") }
        #expect(lines.contains { $0.hasPrefix("<3>") && $0.contains("nonexistent-rules-dir") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("<6>stopped:") }, "\(lines)")

        // Any other stream: plain lines.
        let plain = try Daemon()
        try plain.start(environment: ["JOURNAL_STREAM": "1:1"])
        usleep(300_000)
        #expect(plain.stop() == 0)
        #expect(Self.diagnostics(plain).hasPrefix("logtriage: "), "\(Self.diagnostics(plain))")
    }
}

extension LiveRunTests {
    @Test("SIGHUP reloads the rules between RELOADING=1 and READY=1; a broken rule is refused and the running rules stay")
    func reloadRules() throws {
        let rulesDir = NSTemporaryDirectory() + "logtriage-reload-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: rulesDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: rulesDir) }
        let pack = Fixtures.rulesDirectory + "/linux/"
        try FileManager.default.copyItem(atPath: pack + "sshd_invalid_user.yml", toPath: rulesDir + "/sshd_invalid_user.yml")
        let d = try Daemon(extra: "rules: [\(rulesDir)]")
        let socket = try NotifySocket(directory: d.dir)
        try d.start(environment: ["NOTIFY_SOCKET": socket.path])
        #expect(socket.receive(seconds: 10) { $0.hasPrefix("READY=1") }.contains { $0.hasPrefix("READY=1") })
        // Not detected yet: the failed-password rule is not loaded.
        try d.append(["\(Self.stamp()) web1 sshd[40]: Failed password for root from 203.0.113.51 port 22 ssh2"])
        usleep(500_000)
        #expect(try d.written().isEmpty)

        try FileManager.default.copyItem(atPath: pack + "sshd_failed_password.yml", toPath: rulesDir + "/sshd_failed_password.yml")
        kill(d.process!.processIdentifier, SIGHUP)
        let reload = socket.receive(seconds: 10) { $0.hasPrefix("READY=1") }
        #expect(reload.first?.hasPrefix("RELOADING=1") == true, "\(reload)")
        #expect(reload.first?.contains("MONOTONIC_USEC=") == true, "\(reload)")
        #expect(reload.last?.hasPrefix("READY=1") == true, "\(reload)")
        try d.append(["\(Self.stamp()) web1 sshd[41]: Failed password for root from 203.0.113.52 port 22 ssh2"])
        _ = try d.waitFor(count: 1, seconds: 5)
        #expect(try d.written().count == 1)

        // A broken rule: the reload is refused, says why, and both rules keep working.
        try "title: broken\nlogsource: {product: linux, service: sshd}\ndetection:\n  sel: {MESSAGE|nosuchmodifier: x}\n  condition: sel\n"
            .write(toFile: rulesDir + "/broken.yml", atomically: true, encoding: .utf8)
        kill(d.process!.processIdentifier, SIGHUP)
        _ = socket.receive(seconds: 10) { $0.hasPrefix("READY=1") }
        try d.append([
            "\(Self.stamp()) web1 sshd[42]: Failed password for root from 203.0.113.53 port 22 ssh2",
            "\(Self.stamp()) web1 sshd[43]: Invalid user quinn from 203.0.113.54 port 22",
        ])
        _ = try d.waitFor(count: 3, seconds: 5)
        #expect(d.stop() == 0)
        let messages = try d.written().compactMap { $0["message"] as? String }
        #expect(messages.count == 3, "\(messages)")
        #expect(messages.contains { $0.contains("203.0.113.53") })
        #expect(messages.contains { $0.contains("203.0.113.54") })
        let log = Self.diagnostics(d)
        #expect(log.contains("broken.yml"), "\(log)")
        #expect(log.contains("reload refused"), "\(log)")
    }
}

extension LiveRunTests {
    @Test("kill -9 while an aggregation window is open: after the restart the totals update still comes, with the same uid")
    func aggregationSurvivesCrash() throws {
        let d = try Daemon(extra: "aggregate_window: 3s")
        try d.start()
        usleep(300_000)
        try d.append((0..<3).map { "\(Self.stamp()) web1 sshd[7\($0)]: Failed password for root from 203.0.113.71 port 22 ssh2" })
        _ = try d.waitFor(count: 1, seconds: 5)
        usleep(1_500_000)  // caught up, and the checkpoint (saved at most every second) holds the open group
        #expect(d.stop(signal: SIGKILL) != 0)
        try d.start()
        _ = try d.waitFor(count: 2, seconds: 10)
        #expect(d.stop() == 0)
        let found = try d.written()
        #expect(found.count == 2, "\(found.map { $0["message"] ?? "" })")
        let update = found.first { $0["activity_id"] as? Int == 2 }
        #expect(update?["count"] as? Int == 3)
        #expect(update.map(Self.uid) == found.first.map(Self.uid))
    }
}
