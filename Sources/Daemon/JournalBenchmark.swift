import CSystemd
import EventModel
import Foundation
import Ingest

/// `logtriage bench journal`: how fast the journal source reads a journal directory (entries
/// become events, every field and the cursor included), alone and with detection, against
/// `journalctl -o export` and against sd-journal's own enumeration of the same files in the same run.
package enum JournalBenchmark {
    package struct Result: Sendable {
        package var entries: Int
        /// The best of the rounds for each pass: the journal source, sd-journal alone (stepping
        /// and enumerating every field, nothing copied) and `journalctl -o export`.
        package var readSeconds: Double
        package var sdJournalSeconds: Double
        package var journalctlSeconds: Double
        package var detectSeconds: Double
        package var findings: Int
        package var rounds: Int
        /// Anonymous and file-backed resident memory at the end of the read pass, in MB.
        package var readRSS: (anon: Double, file: Double)
    }

    /// `rounds` rounds of the three reading passes, interleaved so that a slow moment of the
    /// machine does not favour one of them, then (with `detect`) one read-and-detect pass.
    package static func run(directory: String, rules: ScanConfiguration, detect: Bool = true, rounds: Int = 3) throws -> Result {
        var result = Result(
            entries: 0, readSeconds: .infinity, sdJournalSeconds: .infinity, journalctlSeconds: .infinity, detectSeconds: 0, findings: 0,
            rounds: max(1, rounds), readRSS: (0, 0))
        for round in 0..<result.rounds {
            // The passes take turns at going first, so that none always runs right after another
            // process (journalctl) had the CPU and its caches.
            if detect, round % 2 == 1 {
                result.sdJournalSeconds = min(result.sdJournalSeconds, try sdJournalPass(directory))
            }
            let (entries, readSeconds, readRSS) = try readPass(directory)
            result.entries = entries
            result.readRSS = readRSS
            result.readSeconds = min(result.readSeconds, readSeconds)
            guard detect else { continue }
            if round % 2 == 0 {
                result.sdJournalSeconds = min(result.sdJournalSeconds, try sdJournalPass(directory))
            }
            result.journalctlSeconds = min(result.journalctlSeconds, try journalctlPass(directory))
        }
        guard detect else { return result }
        // Read and detect, as the daemon does.
        let pipeline = try ScanPipeline(configuration: rules)
        var detector = Detector(rules: pipeline.rules, configuration: rules, live: true)
        var findings = 0
        let start = ContinuousClock.now
        let again = try JournalReader(location: .directory(directory))
        try again.seek(cursor: nil, start: .head)
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        while try again.poll(maxEntries: 100_000, { event in detector.process(&event, now: now) { _ in findings += 1 } }) > 0 {}
        detector.finish(now: now) { _ in findings += 1 }
        result.detectSeconds = seconds(since: start)
        result.findings = findings
        return result
    }

    /// journalctl over the same files, writing to /dev/null (nothing of ours competes with it).
    static func journalctlPass(_ directory: String) throws -> Double {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/journalctl")
        p.arguments = ["-D", directory, "-o", "export", "--no-pager"]
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        p.standardError = FileHandle.nullDevice
        let start = ContinuousClock.now
        try p.run()
        p.waitUntilExit()
        let elapsed = seconds(since: start)
        guard p.terminationStatus == 0 else {
            throw CorrelationBenchmark.BenchmarkError(message: "journalctl -D \(directory) exited with \(p.terminationStatus)")
        }
        return elapsed
    }

    /// sd-journal alone: every entry stepped to, its stamps read and every field enumerated, with
    /// nothing copied — the part of any reader's time that libsystemd takes.
    static func sdJournalPass(_ directory: String) throws -> Double {
        var handle: OpaquePointer?
        let r = sd_journal_open_directory(&handle, directory, 0)
        guard r >= 0, let journal = handle else {
            throw CorrelationBenchmark.BenchmarkError(message: "\(directory): sd_journal_open_directory failed (\(r))")
        }
        defer { sd_journal_close(journal) }
        let start = ContinuousClock.now
        var bytes = 0
        _ = sd_journal_seek_head(journal)
        while sd_journal_next(journal) > 0 {
            var usec: UInt64 = 0
            var monotonic: UInt64 = 0
            var boot = sd_id128_t()
            _ = sd_journal_get_realtime_usec(journal, &usec)
            _ = sd_journal_get_monotonic_usec(journal, &monotonic, &boot)
            sd_journal_restart_data(journal)
            var data: UnsafeRawPointer?
            var length = 0
            while sd_journal_enumerate_data(journal, &data, &length) > 0 { bytes &+= length }
        }
        let elapsed = seconds(since: start)
        guard bytes > 0 else { throw CorrelationBenchmark.BenchmarkError(message: "\(directory): no journal entries") }
        return elapsed
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
