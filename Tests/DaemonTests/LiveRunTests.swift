import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `logtriage run` as a real process following real files.
@Suite("Live daemon", .serialized)
struct LiveRunTests {
    /// A daemon with a scratch state directory, one followed file and findings collected from stdout.
    final class Daemon {
        let dir: String
        let log: String
        let findings: String
        let config: String
        let stderr: String
        var process: Process?

        init(extra: String = "", sources: String? = nil) throws {
            dir = NSTemporaryDirectory() + "logtriage-run-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            log = dir + "/auth.log"
            findings = dir + "/stdout.jsonl"
            config = dir + "/logtriage.yaml"
            stderr = dir + "/stderr.txt"
            FileManager.default.createFile(atPath: findings, contents: nil)
            FileManager.default.createFile(atPath: stderr, contents: nil)
            try configure(sources: sources, extra: extra)
        }

        /// Writes the configuration: `sources` (default: the followed file), stdout and any
        /// further `outputs` (YAML list items), and `extra` top-level keys.
        func configure(sources: String? = nil, outputs: String = "", extra: String = "") throws {
            try """
            sources:
            \(sources ?? "  files:\n    - path: \(log)")
            output:
              - stdout
            \(outputs)
            state_directory: \(dir)/state
            \(extra)
            """.write(toFile: config, atomically: true, encoding: .utf8)
        }

        deinit {
            process?.terminate()
            try? FileManager.default.removeItem(atPath: dir)
        }

        func start(environment: [String: String] = [:]) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Fixtures.binary)
            p.arguments = ["run", "--config", config]
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            let out = try FileHandle(forWritingTo: URL(fileURLWithPath: findings))
            try out.seekToEnd()
            p.standardOutput = out
            let err = try FileHandle(forWritingTo: URL(fileURLWithPath: stderr))
            try err.seekToEnd()
            p.standardError = err
            try p.run()
            process = p
        }

        func stop(signal sig: Int32 = SIGTERM) -> Int32 {
            guard let p = process else { return -1 }
            kill(p.processIdentifier, sig)
            p.waitUntilExit()
            process = nil
            return p.terminationStatus
        }

        func append(_ lines: [String]) throws {
            if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            try h.seekToEnd()
            try h.write(contentsOf: Data((lines.joined(separator: "\n") + "\n").utf8))
            try h.close()
        }

        /// The findings written so far, parsed.
        func written() throws -> [[String: Any]] {
            let data = try Data(contentsOf: URL(fileURLWithPath: findings))
            return try data.split(separator: UInt8(ascii: "\n")).map {
                try #require(try JSONSerialization.jsonObject(with: Data($0)) as? [String: Any])
            }
        }

        /// The findings written so far, parsed, and the lines that are not JSON (lines a kill cut short).
        func writtenAndCut() throws -> (findings: [[String: Any]], cut: Int) {
            let data = try Data(contentsOf: URL(fileURLWithPath: findings))
            var parsed: [[String: Any]] = []
            var cut = 0
            for line in data.split(separator: UInt8(ascii: "\n")) {
                if let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] {
                    parsed.append(object)
                } else {
                    cut += 1
                }
            }
            return (parsed, cut)
        }

        /// Waits until `count` findings are written or `seconds` pass; returns the wait.
        func waitFor(count: Int, seconds: Double) throws -> Double {
            let start = Date()
            while Date().timeIntervalSince(start) < seconds {
                if try written().count >= count { break }
                usleep(20_000)
            }
            return Date().timeIntervalSince(start)
        }
    }

    /// The daemon's diagnostics so far.
    static func diagnostics(_ d: Daemon) -> String { (try? String(contentsOfFile: d.stderr, encoding: .utf8)) ?? "" }

    /// The address a `:0` listener got, from the daemon's "listening on" line.
    static func port(_ d: Daemon, _ scheme: String) throws -> String {
        for _ in 0..<100 {
            let text = diagnostics(d)
            if let r = text.range(of: "listening on \(scheme)://127.0.0.1:") {
                return String(text[r.upperBound...].prefix { $0.isNumber })
            }
            usleep(50_000)
        }
        Issue.record("no \(scheme) listener reported: \(diagnostics(d))")
        return "0"
    }

    static func uid(_ f: [String: Any]) -> String { ((f["finding_info"] as? [String: Any])?["uid"] as? String) ?? "" }

    /// Syslog stamps of now, so live aggregation windows and correlations see current events.
    static func stamp(_ offset: Int = 0) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "MMM d HH:mm:ss"
        return f.string(from: Date().addingTimeInterval(Double(offset)))
    }

    /// A datagram socket standing in for systemd's notification socket.
    final class NotifySocket {
        let path: String
        let fd: Int32

        init(directory: String) throws {
            path = directory + "/notify.sock"
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                for (i, b) in path.utf8.enumerated() { raw[i] = b }
            }
            let bound = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            try #require(fd >= 0 && bound == 0)
            var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit { close(fd) }

        /// Messages received until `until` returns true for one or `seconds` pass.
        func receive(seconds: Double, until: (String) -> Bool) -> [String] {
            var out: [String] = []
            let start = Date()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while Date().timeIntervalSince(start) < seconds {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
                guard n > 0 else { continue }
                let message = String(decoding: buffer[..<n], as: UTF8.self)
                out.append(message)
                if until(message) { break }
            }
            return out
        }
    }

    @Test("systemd notifications: READY once following, STATUS, WATCHDOG while the loop runs, STOPPING on SIGTERM")
    func notifications() throws {
        let d = try Daemon()
        let socket = try NotifySocket(directory: d.dir)
        try d.start(environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "2000000"])
        let early = socket.receive(seconds: 10) { $0.contains("WATCHDOG=1") }
        #expect(early.first?.hasPrefix("READY=1") == true, "\(early)")
        #expect(early.first?.contains("STATUS=following 1 files") == true)
        #expect(early.contains("WATCHDOG=1"))
        kill(d.process!.processIdentifier, SIGTERM)
        let late = socket.receive(seconds: 10) { $0.contains("STOPPING=1") }
        #expect(late.contains("STOPPING=1"), "\(late)")
        #expect(d.stop() == 0)
    }

    @Test("syslog from logger over UDP, TCP (octet counting and LF) and a unix stream socket becomes findings within a second")
    func syslogListeners() throws {
        let dir = NSTemporaryDirectory() + "logtriage-sock-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let d = try Daemon(
            sources: """
                  syslog:
                    - listen: udp://127.0.0.1:0
                    - listen: tcp://127.0.0.1:0
                      max_message_bytes: 480
                    - listen: unix://\(dir)/syslog.sock
                """)
        try d.start()
        let udp = try Self.port(d, "udp")
        let tcp = try Self.port(d, "tcp")
        let sends: [[String]] = [
            ["-n", "127.0.0.1", "-P", udp, "-d", "-t", "sshd", "Failed password for root from 203.0.113.11 port 22 ssh2"],
            ["-n", "127.0.0.1", "-P", tcp, "-T", "--octet-count", "-t", "sshd", "Invalid user bob from 203.0.113.12 port 22"],
            ["-n", "127.0.0.1", "-P", tcp, "-T", "--rfc3164", "-t", "sshd", "Invalid user carol from 203.0.113.13 port 22"],
            ["-u", "\(dir)/syslog.sock", "-T", "--rfc3164", "-t", "sshd", "Invalid user dave from 203.0.113.14 port 22"],
        ]
        for (i, args) in sends.enumerated() {
            let (status, _, err) = try Fixtures.run("/usr/bin/logger", args)
            #expect(status == 0, "\(err)")
            let waited = try d.waitFor(count: i + 1, seconds: 5)
            #expect(waited < 1.0, "finding \(i + 1) took \(waited) s")
        }
        // A message over the TCP listener's limit is cut and counted, not dropped.
        let long = "Invalid user " + String(repeating: "x", count: 2000) + " from 203.0.113.15 port 22"
        _ = try Fixtures.run("/usr/bin/logger", ["-n", "127.0.0.1", "-P", tcp, "-T", "--octet-count", "-S", "4000", "-t", "sshd", long])
        usleep(500_000)
        #expect(d.stop() == 0)
        let messages = try d.written().compactMap { $0["message"] as? String }
        for ip in ["203.0.113.11", "203.0.113.12", "203.0.113.13", "203.0.113.14"] {
            #expect(messages.contains { $0.contains(ip) }, "\(ip) missing: \(messages)")
        }
        let summary = Self.diagnostics(d)
        #expect(summary.contains("syslog: 5 received, 0 dropped"), "\(summary)")
        #expect(summary.contains("1 truncated"), "\(summary)")
    }

    @Test("rsyslog forwarding RFC 5424 over TCP with octet counting: findings within a second")
    func rsyslogForwarding() throws {
        let d = try Daemon(sources: "  syslog:\n    - listen: tcp://127.0.0.1:0")
        try d.start()
        let port = try Self.port(d, "tcp")
        let rs = d.dir + "/rsyslog"
        try FileManager.default.createDirectory(atPath: rs, withIntermediateDirectories: true)
        // rsyslog takes local messages on its own socket (not /dev/log) and forwards them to us.
        try """
        global(workDirectory="\(rs)")
        module(load="imuxsock" SysSock.Use="off")
        input(type="imuxsock" Socket="\(rs)/log.sock" useSpecialParser="off" parseHostname="on")
        action(type="omfwd" target="127.0.0.1" port="\(port)" protocol="tcp" TCP_Framing="octet-counted"
               template="RSYSLOG_SyslogProtocol23Format")
        """.write(toFile: rs + "/rsyslog.conf", atomically: true, encoding: .utf8)
        let rsyslog = Process()
        rsyslog.executableURL = URL(fileURLWithPath: "/usr/sbin/rsyslogd")
        rsyslog.arguments = ["-n", "-f", rs + "/rsyslog.conf", "-i", rs + "/rsyslog.pid"]
        try rsyslog.run()
        // rsyslog retries its forwarding queue on shutdown; it stops before we do, and not for long.
        func stopRsyslog() {
            guard rsyslog.isRunning else { return }
            rsyslog.terminate()
            for _ in 0..<40 where rsyslog.isRunning { usleep(50_000) }
            if rsyslog.isRunning { kill(rsyslog.processIdentifier, SIGKILL) }
            rsyslog.waitUntilExit()
        }
        defer { stopRsyslog() }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: rs + "/log.sock") { usleep(50_000) }
        let (status, _, err) = try Fixtures.run(
            "/usr/bin/logger",
            ["-u", rs + "/log.sock", "-t", "sshd", "-i", "Failed password for invalid user eve from 203.0.113.21 port 22 ssh2"])
        #expect(status == 0, "\(err)")
        let waited = try d.waitFor(count: 1, seconds: 5)
        #expect(waited < 1.0, "the finding took \(waited) s")
        stopRsyslog()
        #expect(d.stop() == 0)
        let f = try #require(try d.written().first)
        let evidence = try #require((f["evidences"] as? [[String: Any]])?.first?["data"] as? [String: Any])
        #expect(evidence["MESSAGE"] as? String == "Failed password for invalid user eve from 203.0.113.21 port 22 ssh2")
        #expect(evidence["SYSLOG_IDENTIFIER"] as? String == "sshd")
        #expect((evidence["SYSLOG_TIMESTAMP"] as? String)?.contains("T") == true, "an RFC 5424 stamp")
    }

    @Test("a file output is reopened on SIGHUP after logrotate moved it")
    func fileOutputReopen() throws {
        let d = try Daemon(extra: "")
        let out = d.dir + "/findings.jsonl"
        try String(contentsOfFile: d.config, encoding: .utf8)
            .replacingOccurrences(of: "output:\n  - stdout", with: "output:\n  - file: \(out)\n    fsync: always")
            .write(toFile: d.config, atomically: true, encoding: .utf8)
        try d.start()
        try d.append(["\(Self.stamp()) web1 sshd[30]: Invalid user one from 198.51.100.31 port 22"])
        func lines(_ path: String) -> [String] {
            (try? String(contentsOfFile: path, encoding: .utf8))?.split(separator: "\n").map(String.init) ?? []
        }
        for _ in 0..<100 where lines(out).isEmpty { usleep(50_000) }
        try FileManager.default.moveItem(atPath: out, toPath: out + ".1")
        kill(d.process!.processIdentifier, SIGHUP)
        usleep(300_000)
        try d.append(["\(Self.stamp()) web1 sshd[31]: Invalid user two from 198.51.100.32 port 22"])
        for _ in 0..<100 where lines(out).isEmpty { usleep(50_000) }
        #expect(d.stop() == 0)
        #expect(lines(out + ".1").count == 1 && lines(out + ".1")[0].contains("198.51.100.31"))
        #expect(lines(out).count == 1 && lines(out)[0].contains("198.51.100.32"))
    }

    @Test("a line a kill cut short stays a line of its own: the next finding, on stdout and in a file, starts a new line")
    func cutLineIsEnded() throws {
        let d = try Daemon()
        let out = d.dir + "/findings.jsonl"
        try String(contentsOfFile: d.config, encoding: .utf8)
            .replacingOccurrences(of: "output:\n  - stdout", with: "output:\n  - stdout\n  - file: \(out)")
            .write(toFile: d.config, atomically: true, encoding: .utf8)
        // What a kill in the middle of a write leaves: the start of a line, no newline.
        let cut = #"{"activity_id":1,"activity_name":"Cre"#
        for path in [d.findings, out] { try cut.write(toFile: path, atomically: false, encoding: .utf8) }
        try d.start()
        try d.append(["\(Self.stamp()) web1 sshd[40]: Invalid user cut from 198.51.100.40 port 22"])
        for _ in 0..<100 where (try? d.writtenAndCut().findings.count) ?? 0 < 1 { usleep(50_000) }
        #expect(d.stop() == 0)
        for path in [d.findings, out] {
            let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.first.map(String.init) == cut, "\(path)")
            #expect(lines.count == 3 && lines.last == "", "\(path): \(lines.count) lines")
            let finding = try #require(try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any], "\(path)")
            #expect((finding["message"] as? String)?.contains("198.51.100.40") == true)
        }
        // A file that ends with a newline gets nothing added.
        try d.start()
        usleep(300_000)
        #expect(d.stop() == 0)
        #expect(try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).count == 3)
    }

    @Test("a line written to a followed file becomes a finding within a second")
    func latency() throws {
        let d = try Daemon()
        try d.append(["\(Self.stamp()) web1 sshd[10]: Accepted publickey for alice from 192.0.2.1 port 22 ssh2"])
        try d.start()
        usleep(500_000)
        try d.append(["\(Self.stamp()) web1 sshd[11]: Failed password for root from 203.0.113.77 port 22 ssh2"])
        let waited = try d.waitFor(count: 1, seconds: 5)
        #expect(waited < 1.0, "the finding took \(waited) s")
        #expect(d.stop() == 0)
        let f = try d.written()
        #expect(f.count == 1)
        #expect((f.first?["message"] as? String)?.contains("203.0.113.77") == true)
    }

    @Test("restart resumes after the last committed line; rotation and late files are followed")
    func resumeAndRotate() throws {
        let d = try Daemon()
        try d.start()
        usleep(300_000)
        try d.append(["\(Self.stamp()) web1 sshd[20]: Invalid user alpha from 198.51.100.1 port 22"])
        _ = try d.waitFor(count: 1, seconds: 5)
        #expect(d.stop() == 0)
        try d.append(["\(Self.stamp()) web1 sshd[21]: Invalid user beta from 198.51.100.2 port 22"])
        try d.start()
        _ = try d.waitFor(count: 2, seconds: 5)
        // logrotate: rename, then a new file at the path.
        try FileManager.default.moveItem(atPath: d.log, toPath: d.log + ".1")
        try d.append(["\(Self.stamp()) web1 sshd[22]: Invalid user gamma from 198.51.100.3 port 22"])
        _ = try d.waitFor(count: 3, seconds: 5)
        #expect(d.stop() == 0)
        let messages = try d.written().compactMap { $0["message"] as? String }
        #expect(messages.count == 3, "\(messages)")
        for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
            #expect(messages.filter { $0.contains(ip) }.count == 1, "\(ip): \(messages)")
        }
    }

    @Test("kill -9 at random moments during a 200,000-line replay loses nothing; repeats keep their uid")
    func crashes() throws {
        let d = try Daemon()
        // Routine traffic with guessing from 400 sources, every line naming its source.
        var lines: [String] = []
        var rng = SystemRandomNumberGenerator()
        let now = Self.stamp()
        for i in 0..<200_000 {
            let ip = "203.0.\(i % 400 / 200).\(i % 200 + 1)"
            switch Int.random(in: 0..<10, using: &rng) {
            case 0: lines.append("\(now) web1 sshd[\(i % 30000 + 1000)]: Failed password for root from \(ip) port 22 ssh2")
            case 1: lines.append("\(now) web1 sshd[\(i % 30000 + 1000)]: Invalid user u\(i % 50) from \(ip) port 22")
            case 2: lines.append("\(now) web1 sudo:    bob : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/sh")
            default:
                lines.append(
                    "\(now) web1 CRON[\(i % 30000 + 1000)]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)")
            }
        }
        try d.append(lines)
        let size = try FileManager.default.attributesOfItem(atPath: d.log)[.size] as? UInt64 ?? 0
        let kills = 10
        for _ in 0..<kills {
            try d.start()
            usleep(UInt32.random(in: 150_000...900_000, using: &rng))
            _ = d.stop(signal: SIGKILL)
        }
        // Run to the end: until the committed offset reaches the file's size.
        try d.start()
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let data = FileManager.default.contents(atPath: d.dir + "/state/checkpoints.json") ?? Data()
            if String(decoding: data, as: UTF8.self).contains("\"offset\":\(size)") { break }
            usleep(100_000)
        }
        #expect(d.stop() == 0)
        // A kill can cut the line being written short (the kernel may end a large write early
        // for a fatal signal): such a line stays a line of its own, at most one per kill, and
        // its finding is written again after the restart (the check for missing uids below).
        let (live, cut) = try d.writtenAndCut()
        #expect(cut <= kills, "\(cut) lines that are not JSON after \(kills) kills")
        let liveUIDs = Set(live.map(Self.uid))

        // What an uninterrupted scan of the same file reports.
        let (status, out, err) = try Fixtures.run(Fixtures.binary, ["scan", "--no-progress", d.log])
        #expect(status == 0, "\(err)")
        let expected = Set(
            out.split(separator: UInt8(ascii: "\n")).compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]).map(Self.uid)
            })
        #expect(expected.count > 100)
        let missing = expected.subtracting(liveUIDs)
        #expect(missing.isEmpty, "\(missing.count) of \(expected.count) findings missing after crashes")
        print(
            "crash test: \(live.count) lines written by the daemon, \(cut) cut short, \(liveUIDs.count) distinct uids, \(expected.count) expected, \(missing.count) missing"
        )
    }
}
