import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The socket and syslog outputs of `logtriage run`: a local consumer on the unix socket, a
/// consumer that stops reading, and a real rsyslog receiving RFC 5424 over TCP.
extension LiveRunTests {
    /// A unix stream client of the findings socket.
    final class SocketClient {
        let fd: Int32

        init(path: String) throws {
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                for (i, b) in path.utf8.enumerated() { raw[i] = b }
            }
            var connected: Int32 = -1
            for _ in 0..<100 {
                connected = withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
                if connected == 0 { break }
                usleep(50_000)
            }
            try #require(connected == 0, "cannot connect to \(path)")
            var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit { close(fd) }

        /// Lines read until `count` arrived or `seconds` passed.
        func lines(count: Int, seconds: Double) -> [String] {
            var data = Data()
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            let start = Date()
            while Date().timeIntervalSince(start) < seconds {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
                if n > 0 { data.append(contentsOf: buffer[..<n]) }
                if data.split(separator: 10).count >= count { break }
            }
            return data.split(separator: 10).map { String(decoding: $0, as: UTF8.self) }
        }
    }

    static func invalidUsers(_ range: ClosedRange<Int>) -> [String] {
        range.map { "\(stamp()) web1 sshd[\($0)]: Invalid user u\($0) from 198.18.\($0 / 250).\($0 % 250 + 1) port 22" }
    }

    @Test(
        "the socket output feeds every connected consumer; one that stops reading holds the daemon at most max_block, then is shed and counted; the others lose nothing"
    )
    func socketOutput() throws {
        let d = try Daemon()
        let socketPath = d.dir + "/findings.sock"
        try d.configure(outputs: "  - socket: unix://\(socketPath)\n    buffer_bytes: 65536\n    max_block: 1s")
        try d.start()
        let reader = try SocketClient(path: socketPath)
        let stalled = try SocketClient(path: socketPath)
        usleep(300_000)
        let n = 600
        try d.append(Self.invalidUsers(1...n))
        let received = reader.lines(count: n, seconds: 15)
        _ = try d.waitFor(count: n, seconds: 10)
        #expect(d.stop() == 0)
        #expect(received.count == n, "the reading consumer got \(received.count) of \(n)")
        #expect(try d.written().count == n, "stdout has every finding")
        #expect(received.first?.contains("\"class_uid\":2004") == true)
        _ = stalled
        let log = Self.diagnostics(d)
        let shed = log.range(of: #"socket [^:]+: \d+ consumers, (\d+) lines shed"#, options: .regularExpression).map { String(log[$0]) }
        let count = shed.flatMap { Int($0.split(separator: ",")[1].split(separator: " ")[0]) } ?? 0
        #expect(count > 0, "the stalled consumer's lines are counted as shed: \(log)")
    }

    /// rsyslog as the collector: RFC 5424 over TCP with octet counting into a file.
    final class Collector {
        let dir: String
        let port: Int
        let output: String
        var process: Process?

        init(dir: String) throws {
            self.dir = dir + "/collector"
            try FileManager.default.createDirectory(atPath: self.dir, withIntermediateDirectories: true)
            port = try Self.freePort()
            output = self.dir + "/received.log"
            try """
            global(workDirectory="\(self.dir)")
            module(load="imtcp")
            template(name="fields" type="string" string="%pri% %app-name% %msgid% %msg%\\n")
            input(type="imtcp" address="127.0.0.1" port="\(port)")
            action(type="omfile" file="\(output)" template="fields")
            """.write(toFile: self.dir + "/rsyslog.conf", atomically: true, encoding: .utf8)
        }

        static func freePort() throws -> Int {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = 0
            _ = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            return Int(UInt16(bigEndian: addr.sin_port))
        }

        func start() throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/sbin/rsyslogd")
            p.arguments = ["-n", "-f", dir + "/rsyslog.conf", "-i", dir + "/rsyslog.pid"]
            p.standardError = FileHandle.nullDevice
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            process = p
            // Listening once a connect succeeds.
            for _ in 0..<100 {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var addr = sockaddr_in()
                addr.sin_family = sa_family_t(AF_INET)
                addr.sin_addr.s_addr = inet_addr("127.0.0.1")
                addr.sin_port = UInt16(port).bigEndian
                let ok = withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                close(fd)
                if ok == 0 { return }
                usleep(50_000)
            }
        }

        func stop() {
            guard let p = process else { return }
            p.terminate()
            for _ in 0..<40 where p.isRunning { usleep(50_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
            process = nil
        }

        /// Complete lines only: rsyslog may be midway through writing the last one.
        func lines() -> [String] {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            guard let end = text.lastIndex(of: "\n") else { return [] }
            return text[..<end].split(separator: "\n").map(String.init)
        }

        func wait(count: Int, seconds: Double) -> [String] {
            let start = Date()
            while Date().timeIntervalSince(start) < seconds, lines().count < count { usleep(50_000) }
            return lines()
        }
    }

    @Test("the syslog output delivers RFC 5424 to a real rsyslog; findings written while it is down arrive after it returns")
    func syslogOutput() throws {
        let d = try Daemon()
        let collector = try Collector(dir: d.dir)
        defer { collector.stop() }
        try d.configure(outputs: "  - syslog: tcp://127.0.0.1:\(collector.port)\n    max_block: 1s")
        try collector.start()
        try d.start()
        usleep(300_000)
        try d.append(["\(Self.stamp()) web1 sshd[60]: Failed password for root from 203.0.113.61 port 22 ssh2"])
        var got = collector.wait(count: 1, seconds: 5)
        try #require(got.count == 1, "\(got) \(Self.diagnostics(d))")
        let parts = got[0].split(separator: " ", maxSplits: 3).map(String.init)
        // authpriv (10) with a low finding's severity: notice (5).
        #expect(parts[0] == "85", "\(got[0])")
        #expect(parts[1] == "logtriage" && parts[2] == "finding")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(parts[3].utf8)) as? [String: Any])
        // The file output may be written a moment after the syslog one.
        _ = try d.waitFor(count: 1, seconds: 5)
        let first = try #require(try d.written().first, "\(Self.diagnostics(d))")
        #expect(Self.uid(json) == Self.uid(first))

        // The collector goes away; findings wait for it (bounded) and follow when it is back.
        collector.stop()
        try d.append(Self.invalidUsers(1...5))
        _ = try d.waitFor(count: 6, seconds: 5)
        try collector.start()
        got = collector.wait(count: 6, seconds: 15)
        #expect(d.stop() == 0)
        #expect(got.count == 6, "\(got.count) of 6 at the collector: \(Self.diagnostics(d))")
        let uids = Set(
            got.compactMap { line -> String? in
                let json = line.split(separator: " ", maxSplits: 3).last.map(String.init) ?? ""
                return (try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]).map(Self.uid)
            })
        #expect(uids == Set(try d.written().map(Self.uid)))
        #expect(Self.diagnostics(d).contains("0 lines shed"), "\(Self.diagnostics(d))")
    }
}

extension LiveRunTests {
    @Test("a collector whose name does not resolve holds nothing up: findings reach stdout within a second, the output reports why")
    func unresolvableCollector() throws {
        let d = try Daemon()
        try d.configure(outputs: "  - syslog: tcp://collector.logtriage-test.invalid:6514")
        try d.start()
        usleep(300_000)
        try d.append(["\(Self.stamp()) web1 sshd[80]: Failed password for root from 203.0.113.81 port 22 ssh2"])
        let waited = try d.waitFor(count: 1, seconds: 5)
        #expect(waited < 1.0, "the finding took \(waited) s")
        usleep(1_500_000)
        #expect(d.stop() == 0)
        let log = Self.diagnostics(d)
        #expect(log.contains("syslog collector.logtriage-test.invalid:6514: disconnected"), "\(log)")
        #expect(log.contains("0 lines shed"), "the finding waits in the buffer: \(log)")
    }
}
