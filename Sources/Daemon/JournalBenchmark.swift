import EventModel
import Foundation
import Ingest

/// `logtriage bench journal`: how fast the journal source reads a journal directory (entries
/// become events, every field and the cursor included), alone and with detection, against
/// `journalctl -o export` over the same files in the same run.
package enum JournalBenchmark {
    package struct Result: Sendable {
        package var entries: Int
        package var readSeconds: Double
        package var detectSeconds: Double
        package var findings: Int
        package var journalctlSeconds: Double
        package var journalctlBytes: Int
        package var peakMB: Double
    }

    package static func run(directory: String, rules: ScanConfiguration) throws -> Result {
        // Read only: what the source costs.
        var start = ContinuousClock.now
        let reader = try JournalReader(location: .directory(directory))
        try reader.seek(cursor: nil, start: .head)
        var entries = 0
        var fields = 0
        while true {
            let n = try reader.poll(maxEntries: 100_000) { fields &+= $0.fields.count }
            if n == 0 { break }
            entries += n
        }
        let readSeconds = seconds(since: start)
        guard entries > 0 else { throw CorrelationBenchmark.BenchmarkError(message: "\(directory): no journal entries") }

        // Read and detect, as the daemon does.
        let pipeline = try ScanPipeline(configuration: rules)
        var detector = Detector(rules: pipeline.rules, configuration: rules, live: true)
        var findings = 0
        start = ContinuousClock.now
        let again = try JournalReader(location: .directory(directory))
        try again.seek(cursor: nil, start: .head)
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        while try again.poll(maxEntries: 100_000, { event in detector.process(&event, now: now) { _ in findings += 1 } }) > 0 {}
        detector.finish(now: now) { _ in findings += 1 }
        let detectSeconds = seconds(since: start)

        // journalctl over the same files, its output counted and thrown away.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/journalctl")
        p.arguments = ["-D", directory, "-o", "export", "--no-pager"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        start = ContinuousClock.now
        try p.run()
        var bytes = 0
        let handle = pipe.fileHandleForReading
        while true {
            let chunk = handle.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            bytes += chunk.count
        }
        p.waitUntilExit()
        let journalctlSeconds = seconds(since: start)
        return Result(
            entries: entries, readSeconds: readSeconds, detectSeconds: detectSeconds, findings: findings,
            journalctlSeconds: journalctlSeconds, journalctlBytes: bytes, peakMB: CorrelationBenchmark.memory().peak)
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
