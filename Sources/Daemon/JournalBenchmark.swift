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
        /// Anonymous and file-backed resident memory at the end of the read pass, in MB.
        package var readRSS: (anon: Double, file: Double)
    }

    package static func run(directory: String, rules: ScanConfiguration, detect: Bool = true) throws -> Result {
        let (entries, readSeconds, readRSS) = try readPass(directory)
        guard detect else {
            return Result(entries: entries, readSeconds: readSeconds, detectSeconds: 0, findings: 0, journalctlSeconds: 0, readRSS: readRSS)
        }
        // Read and detect, as the daemon does.
        let pipeline = try ScanPipeline(configuration: rules)
        var detector = Detector(rules: pipeline.rules, configuration: rules, live: true)
        var findings = 0
        var start = ContinuousClock.now
        let again = try JournalReader(location: .directory(directory))
        try again.seek(cursor: nil, start: .head)
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        while try again.poll(maxEntries: 100_000, { event in detector.process(&event, now: now) { _ in findings += 1 } }) > 0 {}
        detector.finish(now: now) { _ in findings += 1 }
        let detectSeconds = seconds(since: start)

        // journalctl over the same files, writing to /dev/null (nothing of ours competes with it).
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/journalctl")
        p.arguments = ["-D", directory, "-o", "export", "--no-pager"]
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        p.standardError = FileHandle.nullDevice
        start = ContinuousClock.now
        try p.run()
        p.waitUntilExit()
        let journalctlSeconds = seconds(since: start)
        guard p.terminationStatus == 0 else {
            throw CorrelationBenchmark.BenchmarkError(message: "journalctl -D \(directory) exited with \(p.terminationStatus)")
        }
        return Result(
            entries: entries, readSeconds: readSeconds, detectSeconds: detectSeconds, findings: findings,
            journalctlSeconds: journalctlSeconds, readRSS: readRSS)
    }

    /// Every entry read into events, nothing else; the reader is closed before returning.
    static func readPass(_ directory: String) throws -> (Int, Double, (anon: Double, file: Double)) {
        let start = ContinuousClock.now
        let reader = try JournalReader(location: .directory(directory))
        try reader.seek(cursor: nil, start: .head)
        var entries = 0
        var fields = 0
        while true {
            let n = try reader.poll(maxEntries: 100_000) { fields &+= $0.fields.count }
            if n == 0 { break }
            entries += n
        }
        let elapsed = seconds(since: start)
        guard entries > 0 else { throw CorrelationBenchmark.BenchmarkError(message: "\(directory): no journal entries") }
        return (entries, elapsed, residentMemory())
    }

    /// RssAnon and RssFile from /proc/self/status, in MB.
    static func residentMemory() -> (anon: Double, file: Double) {
        let v = CorrelationBenchmark.statusMegabytes(["RssAnon:", "RssFile:"])
        return (v[0], v[1])
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
