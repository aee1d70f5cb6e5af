import EventModel
import Foundation
import Sigma

/// Drives the correlation engine alone with synthetic failed logins, for `logtriage bench correlation`.
package struct CorrelationBenchmark {
    package struct Result: Sendable {
        package var events: Int
        package var seconds: Double
        package var groups: Int
        package var evictions: Int
        package var incidents: Int
        package var rssBeforeMB: Double
        package var rssAfterMB: Double
        package var peakMB: Double
    }

    static let rules = """
        title: failed login
        id: bench-failed-login
        name: bench_failed_login
        logsource: {product: linux}
        detection:
            k: ['Failed password']
            condition: k
        ---
        title: password spraying
        id: bench-spraying
        correlation:
            type: value_count
            rules: [bench_failed_login]
            group-by: [source.address]
            timespan: 10m
            condition: {field: user.name, gte: 5}
        """

    /// Feeds `events` failures, each from a new source (round-robin over `sources` distinct ones).
    package static func run(events: Int, sources: Int, maxGroups: Int) throws -> Result {
        let dir = NSTemporaryDirectory() + "logtriage-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(rules.utf8).write(to: URL(fileURLWithPath: dir + "/rules.yml"))
        let pipeline = try Pipeline.load(directory: BundledRules.require() + "/pipelines")
        let (set, report) = RuleSet.load(paths: [dir + "/rules.yml"], pipeline: pipeline)
        guard report.errors.isEmpty, let rule = set.rules.firstIndex(where: { $0.id == "bench-failed-login" }) else {
            throw BenchmarkError(message: "benchmark rules did not load: \(report.errors)")
        }
        // Each event is built just before it is fed and only the engine call is timed; the events
        // are not kept anywhere else, so the memory growth is the engine's state.
        var engine = CorrelationEngine(rules: set, maxGroups: maxGroups)
        let before = memory().rss
        var incidents = 0
        let clock = ContinuousClock()
        var engineTime = Duration.zero
        for i in 0..<events {
            let s = i % sources
            let ip = "\(10 + (s >> 24) & 0xFF).\((s >> 16) & 0xFF).\((s >> 8) & 0xFF).\(s & 0xFF)"
            var e = Event(position: SourcePosition(source: "bench", line: i, offset: UInt64(i) * 80))
            e.fields.add(FieldName.message, "Failed password for root from \(ip) port 22 ssh2")
            e.fields.add("source.address", ip)
            e.fields.add("user.name", "user\(i % 7)")
            let t0 = clock.now
            incidents += engine.observe(rule: rule, event: e, time: Int64(i) * 1000).count
            engineTime += clock.now - t0
        }
        let seconds = Double(engineTime.components.seconds) + Double(engineTime.components.attoseconds) / 1e18
        let after = memory()
        let groups = engine.groupCount
        incidents += engine.flush().count
        return Result(
            events: events, seconds: seconds, groups: groups, evictions: engine.evictions, incidents: incidents,
            rssBeforeMB: before, rssAfterMB: after.rss, peakMB: after.peak)
    }

    /// Current and peak resident set size in MB, from /proc/self/status.
    static func memory() -> (rss: Double, peak: Double) {
        let v = statusMegabytes(["VmRSS:", "VmHWM:"])
        return (v[0], v[1])
    }

    /// Values of /proc/self/status lines (kB) in MB, 0 for a line that is not there.
    static func statusMegabytes(_ keys: [String]) -> [Double] {
        let text = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let lines = text.split(separator: "\n")
        return keys.map { key in
            guard let line = lines.first(where: { $0.hasPrefix(key) }) else { return 0 }
            return Double(line.split(separator: " ").dropFirst().first { !$0.isEmpty }.map(String.init) ?? "0").map { $0 / 1024 } ?? 0
        }
    }

    struct BenchmarkError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }
}
