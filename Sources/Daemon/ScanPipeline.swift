import EventModel
import Findings
import Foundation
import Ingest
import Sigma
import Triage

/// How `scan` reads, detects, triages and writes.
package struct ScanConfiguration: Sendable {
    package var rulePaths: [String] = []
    package var pipelineDirectory: String?
    package var reader = ReaderOptions()
    package var format: FindingFormat = .ocsf
    package var triage: TriageMode = .builtin
    /// With worker triage: hold each finding's first write until the model's triage arrives or
    /// its deadline passes, instead of writing it at once and an update later.
    package var holdForWorker = false
    package var aggregateWindowSeconds = 300
    package var evidenceCap = 10
    package var showProgress = false
    package init() {}
}

package enum TriageMode: String, Sendable, CaseIterable {
    case builtin
    case worker
    case none
}

/// Totals printed after a scan.
package struct ScanSummary: Sendable {
    package var read = ReadStatistics()
    package var matches = 0
    package var findings = 0
    package var rulesLoaded = 0
    package var rulesRejected = 0
    package var filesFailed = 0
    package var regexBudgetExceeded = 0
    package var groupsClosedEarly = 0
    /// Rule evaluations the prefilter let through (the rest were skipped).
    package var ruleEvaluations = 0
    /// Matches of `session: summary` rules not reported because their session already was.
    package var sessionFolded = 0
    /// Correlation groups evicted because a correlation reached its group cap.
    package var correlationEvictions = 0
    /// Audit records read, the events they were joined into, and those given out incomplete.
    package var audit = AuditAssembler.Statistics()
    package var seconds = 0.0

    package var line: String {
        let mb = Double(read.bytes) / 1_048_576
        let rate = seconds > 0 ? Int(Double(read.lines) / seconds) : 0
        var s = "scanned \(read.lines) lines (\(String(format: "%.1f", mb)) MB) in \(String(format: "%.2f", seconds)) s"
        s += " (\(rate) lines/s): \(read.events) events, \(read.unparsable) unparsable, \(read.truncated) truncated;"
        s += " \(matches) matches, \(findings) findings; \(rulesLoaded) rules loaded, \(rulesRejected) rejected"
        s += "; \(ruleEvaluations) rule evaluations"
        if filesFailed > 0 { s += "; \(filesFailed) inputs failed" }
        if regexBudgetExceeded > 0 { s += "; \(regexBudgetExceeded) regex evaluations over budget" }
        if groupsClosedEarly > 0 { s += "; \(groupsClosedEarly) aggregation groups closed early" }
        if sessionFolded > 0 { s += "; \(sessionFolded) session summaries folded" }
        if correlationEvictions > 0 { s += "; \(correlationEvictions) correlation groups evicted" }
        if audit.records > 0 { s += "; \(audit.line)" }
        return s
    }
}

/// The offline pipeline: files → events → rules → aggregated findings → triage → JSON lines.
package struct ScanPipeline {
    package let configuration: ScanConfiguration
    package let rules: RuleSet
    package let loadReport: LoadReport
    private let encoder: FindingEncoder

    package static let version = "0.1.0"

    package init(configuration: ScanConfiguration) throws {
        self.configuration = configuration
        let bundled = BundledRules.directory()
        guard let pipelineDir = configuration.pipelineDirectory ?? bundled.map({ $0 + "/pipelines" }) else {
            throw BundledRules.NotFound()
        }
        let pipeline = try Pipeline.load(directory: pipelineDir)
        var paths = configuration.rulePaths
        if paths.isEmpty {
            guard let bundled else { throw BundledRules.NotFound() }
            paths = [bundled + "/linux"]
        }
        (rules, loadReport) = RuleSet.load(paths: paths, pipeline: pipeline)
        encoder = FindingEncoder(format: configuration.format, productVersion: Self.version)
    }

    /// The finding as one JSON line in the configured schema.
    package func encode(_ f: Finding) -> [UInt8] { encoder.encode(f) }

    /// The findings the rules raise on in-memory `lines` (syslog or JSON, as the reader options
    /// say), as `scan` would write them for a file holding those lines.
    package func findings(of lines: [String], source: String = "lines") -> [Finding] {
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        var detector = Detector(rules: rules, configuration: configuration)
        var decoder = LineDecoder(format: configuration.reader.format, year: configuration.reader.year, now: now)
        var out: [Finding] = []
        var offset: UInt64 = 0
        for (i, line) in lines.enumerated() {
            var bytes = Array(line.utf8)
            let position = SourcePosition(source: source, line: i + 1, offset: offset)
            offset += UInt64(bytes.count + 1)
            guard var event = bytes.withUnsafeMutableBufferPointer({ decoder.decode(UnsafeBufferPointer($0), position: position).event })
            else { continue }
            detector.process(&event, now: now) { out.append($0) }
        }
        detector.finish(now: now) { out.append($0) }
        return out
    }

    /// Scans `inputs` in order, writing findings with `emit`, which gets each finding and its
    /// JSON line (lent for the call). Diagnostics go to `diagnostic`.
    package func run(inputs: [String], emit: (Finding, UnsafeRawBufferPointer) -> Void, diagnostic: (String) -> Void) -> ScanSummary {
        var summary = ScanSummary()
        summary.rulesLoaded = loadReport.loaded
        summary.rulesRejected = loadReport.rejected
        let start = Date()
        var detector = Detector(rules: rules, configuration: configuration)
        let wallClock = Int64(Date().timeIntervalSince1970 * 1_000_000)
        var progress = ProgressLine(enabled: configuration.showProgress)
        let encoder = encoder
        // One writer for every line: a new one per finding allocated its buffer each time.
        var writer = JSONWriter()
        func deliver(_ f: Finding) {
            writer.removeAll()
            encoder.encode(f, into: &writer)
            writer.withBytes { emit(f, $0) }
        }

        for input in inputs {
            var reader: EventReader
            do {
                reader = try EventReader(path: input, options: configuration.reader)
            } catch {
                diagnostic("\(input): \(error)")
                summary.filesFailed += 1
                continue
            }
            do {
                // One event for the whole input: a line that nothing keeps leaves its field
                // list to the next (see `EventReader.next(into:)`).
                var event = Event(position: SourcePosition(source: input, line: 0, offset: 0))
                while try reader.next(into: &event) {
                    detector.process(&event, now: wallClock, deliver: deliver)
                    if progress.enabled, reader.statistics.lines & 0x3FFF == 0 {
                        var s = summary.read
                        s += reader.statistics
                        progress.update(s, since: start)
                    }
                }
            } catch {
                diagnostic("\(input): \(error)")
                summary.filesFailed += 1
            }
            summary.read += reader.statistics
        }
        detector.finish(now: wallClock, deliver: deliver)
        summary.matches = detector.matches
        summary.findings = detector.findings
        summary.correlationEvictions = detector.correlations.evictions
        progress.finish()
        summary.regexBudgetExceeded = detector.context.statistics.regexBudgetExceeded
        summary.ruleEvaluations = detector.context.statistics.rulesEvaluated
        summary.sessionFolded = detector.context.statistics.sessionFolded
        summary.groupsClosedEarly = detector.aggregator.closedEarly
        summary.audit = detector.audit.statistics
        summary.seconds = Date().timeIntervalSince(start)
        return summary
    }
}

/// A single self-overwriting progress line on a terminal.
struct ProgressLine {
    let enabled: Bool
    private var last = Date.distantPast
    private var shown = false

    init(enabled: Bool) { self.enabled = enabled }

    mutating func update(_ s: ReadStatistics, since start: Date) {
        let now = Date()
        guard now.timeIntervalSince(last) >= 0.5 else { return }
        last = now
        shown = true
        let secs = max(0.001, now.timeIntervalSince(start))
        let mb = Double(s.bytes) / 1_048_576
        FileHandle.standardError.write(
            "\r\u{1B}[K\(s.lines) lines, \(String(format: "%.1f", mb)) MB, \(Int(Double(s.lines) / secs)) lines/s".data(using: .utf8)!)
    }

    mutating func finish() {
        if shown { FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!) }
    }
}
