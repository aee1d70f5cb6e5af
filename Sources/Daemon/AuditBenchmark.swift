import EventModel
import Foundation
import Ingest

/// `logtriage bench audit`: audit.log lines through the line decoder and the assembler (parse,
/// decode, join by serial, process creation fields), and the assembler's memory when EOE
/// records never come.
package enum AuditBenchmark {
    package struct Result: Sendable {
        package var records: Int
        package var events: Int
        package var seconds: Double
        package var bytes: Int
        /// Records without EOE fed in the second pass, the most that waited at once, and the RSS growth.
        package var orphans: Int
        package var peakPending: Int
        package var orphanRSSGrowth: Double
    }

    /// `events` execve events of six records each (SYSCALL, EXECVE, CWD, PATH, PROCTITLE, EOE),
    /// arguments partly hex-encoded as auditd writes them, two events interleaved at a time.
    package static func run(events: Int, orphans: Int) -> Result {
        let programs: [(String, [String])] = [
            ("/usr/bin/ls", ["ls", "-la", "/var/tmp"]), ("/usr/bin/bash", ["bash", "-c", "echo hello world | tee /tmp/out"]),
            ("/usr/bin/curl", ["curl", "-fsSL", "https://example.net/install.sh"]), ("/usr/bin/tar", ["tar", "czf", "/tmp/b.tgz", "/etc"]),
        ]
        var lines: [[UInt8]] = []
        lines.reserveCapacity(events * 6)
        var k = 0
        while k < events {
            var pair: [[String]] = []
            for j in 0..<min(2, events - k) {
                let (exe, argv) = programs[(k + j) % programs.count]
                pair.append(
                    records(
                        serial: 10_000 + k + j, time: 1_764_240_000 + (k + j) / 1000, exe: exe, argv: argv, pid: 2000 + (k + j) % 30_000))
            }
            // Interleave the two events record by record.
            for r in 0..<6 { for p in pair { lines.append(Array(p[r].utf8)) } }
            k += pair.count
        }
        let bytes = lines.reduce(0) { $0 + $1.count + 1 }
        var decoder = LineDecoder(format: .audit, now: 0)
        var assembler = AuditAssembler()
        var out: [Event] = []
        out.reserveCapacity(16)
        var fields = 0
        let start = ContinuousClock.now
        for (n, line) in lines.enumerated() {
            let position = SourcePosition(source: "audit.log", line: n + 1, offset: 0)
            guard let event = line.withUnsafeBufferPointer({ decoder.decode($0, position: position).event }) else { continue }
            _ = assembler.take(event, now: 0, into: &out)
            for e in out { fields &+= e.fields.count }
            out.removeAll(keepingCapacity: true)
        }
        assembler.flush(into: &out)
        let seconds = JournalBenchmark.seconds(since: start)
        let assembled = assembler.statistics.events

        // Orphans: SYSCALL records whose EOE never comes, all within one second of event time.
        let before = CorrelationBenchmark.statusMegabytes(["VmRSS:"])[0]
        var orphaned = AuditAssembler()
        var peak = 0
        for n in 0..<orphans {
            let line = Array(
                "type=SYSCALL msg=audit(1764240000.\(n % 1000):\(n)): arch=c000003e syscall=257 success=yes exit=3 ppid=1 pid=\(n) comm=\"cat\" exe=\"/usr/bin/cat\" key=\"identity\""
                    .utf8)
            guard
                let event = line.withUnsafeBufferPointer({
                    decoder.decode($0, position: SourcePosition(source: "o", line: n, offset: 0)).event
                })
            else { continue }
            _ = orphaned.take(event, now: 0, into: &out)
            out.removeAll(keepingCapacity: true)
            peak = max(peak, orphaned.pendingCount)
        }
        let growth = CorrelationBenchmark.statusMegabytes(["VmRSS:"])[0] - before
        _ = fields
        return Result(
            records: lines.count, events: assembled, seconds: seconds, bytes: bytes, orphans: orphans, peakPending: peak,
            orphanRSSGrowth: growth)
    }

    static func records(serial: Int, time: Int, exe: String, argv: [String], pid: Int) -> [String] {
        func encoded(_ s: String) -> String {
            s.utf8.contains { $0 <= 0x20 || $0 == 0x22 || $0 >= 0x7F } ? s.utf8.map { String(format: "%02X", $0) }.joined() : "\"\(s)\""
        }
        let stamp = "msg=audit(\(time).250:\(serial)):"
        let comm = String(exe.split(separator: "/").last ?? "")
        return [
            "type=SYSCALL \(stamp) arch=c000003e syscall=59 success=yes exit=0 a0=55d1c0a0 a1=55d1c0b0 a2=55d1c0c0 a3=0 items=2 ppid=1999 pid=\(pid) auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm=\(encoded(comm)) exe=\(encoded(exe)) key=\"exec\"",
            "type=EXECVE \(stamp) argc=\(argv.count) "
                + argv.enumerated().map { "a\($0.offset)=\(encoded($0.element))" }.joined(separator: " "),
            "type=CWD \(stamp) cwd=\"/home/alice\"",
            "type=PATH \(stamp) item=0 name=\(encoded(exe)) inode=262600 dev=fe:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0",
            "type=PROCTITLE \(stamp) proctitle=" + Array(argv.joined(separator: "\u{0}").utf8).map { String(format: "%02X", $0) }.joined(),
            "type=EOE \(stamp) ",
        ]
    }
}
