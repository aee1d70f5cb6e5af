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
                let exec = AuditExec(exe: exe, argv: argv, pid: 2000 + (k + j) % 30_000, ppid: 1999)
                pair.append(exec.lines(serial: 10_000 + k + j, time: 1_764_240_000 + (k + j) / 1000))
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
}
