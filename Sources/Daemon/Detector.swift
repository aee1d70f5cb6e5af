import EventModel
import Findings
import Ingest
import Sigma
import Triage

/// Detection state for one stream of events: rule matching with sshd sessions, correlations,
/// aggregation and built-in triage. `scan` and `run` feed it the same way.
package struct Detector {
    private let rules: RuleSet
    private let summaries: [RuleSummary]
    private let correlationSummaries: [RuleSummary]
    private let triage: TriageMode
    package private(set) var context = RuleSet.Context()
    package private(set) var aggregator: Aggregator
    package private(set) var correlations: CorrelationEngine
    /// Joins audit records into events before they meet the rules.
    package var audit = AuditAssembler()
    private var auditReady: [Event] = []
    private var triager = BuiltinTriager()
    package private(set) var matches = 0
    package private(set) var findings = 0

    /// `live`: findings are reported at their first event (and updated when their aggregation
    /// window closes) rather than once the window has closed.
    package init(rules: RuleSet, configuration c: ScanConfiguration, live: Bool = false) {
        self.rules = rules
        summaries = rules.rules.map(RuleSummary.init)
        correlationSummaries = rules.correlations.map(RuleSummary.init)
        triage = c.triage
        aggregator = Aggregator(windowSeconds: c.aggregateWindowSeconds, evidenceCap: c.evidenceCap)
        aggregator.reportsFirst = live
        correlations = CorrelationEngine(rules: rules, evidenceCap: c.evidenceCap)
    }

    /// Matches one event; `deliver` gets each finding it completes, triaged.
    package mutating func process(_ event: inout Event, now: Int64, deliver: (Finding) -> Void) {
        guard audit.take(event, now: now, into: &auditReady) else {
            detect(&event, now: now, deliver: deliver)
            return
        }
        detectAudit(now: now, deliver: deliver)
    }

    private mutating func detectAudit(now: Int64, deliver: (Finding) -> Void) {
        guard !auditReady.isEmpty else { return }
        let ready = auditReady
        auditReady.removeAll(keepingCapacity: true)
        for var e in ready { detect(&e, now: now, deliver: deliver) }
    }

    private mutating func detect(_ event: inout Event, now: Int64, deliver: (Finding) -> Void) {
        // The event is reported where it lies, not copied into a list of reports.
        let (released, own) = rules.evaluateInPlace(&event, context: &context)
        if released.isEmpty, own.isEmpty, !correlations.isEmpty {
            let incidents = correlations.advance(to: event.time ?? now)
            hand(incidents.map { Finding(incident: $0, rule: correlationSummaries[$0.correlation]) }, deliver)
        }
        for (matched, var matchedEvent) in released { report(matched, &matchedEvent, now: now, deliver) }
        if !own.isEmpty { report(own, &event, now: now, deliver) }
    }

    /// Reports `event` for the rules it matched. It is first screened for triage (see
    /// `InjectionScreen.mark`), while it is in cache and before it is kept as evidence.
    private mutating func report(_ matched: [Int], _ event: inout Event, now: Int64, _ deliver: (Finding) -> Void) {
        if triage != .none { triager.mark(&event) }
        let time = event.time ?? now
        for r in matched {
            matches += 1
            if !correlations.isEmpty {
                let incidents = correlations.observe(rule: r, event: event, time: time)
                hand(incidents.map { Finding(incident: $0, rule: correlationSummaries[$0.correlation]) }, deliver)
            }
            if !rules.silentRules.contains(r) { hand(aggregator.add(rule: summaries[r], event: event, time: time), deliver) }
        }
    }

    /// A finding the daemon raises itself (such as lost journal entries), triaged like the rest.
    package mutating func notice(_ finding: Finding, deliver: (Finding) -> Void) {
        hand([finding], deliver)
    }

    static let stateMagic = "logtriage-detector-1"

    /// What a restart needs to carry on: the correlation windows and the open aggregation groups
    /// (whose totals update is still to come), for the checkpoint.
    package func snapshot() -> [UInt8] {
        var w = SnapshotWriter()
        write(into: &w)
        return w.out
    }

    /// Streams the state into `w` (to the checkpoint file, without holding it whole).
    package func write(into w: inout SnapshotWriter) {
        w.string(Self.stateMagic)
        correlations.write(into: &w)
        aggregator.write(into: &w)
    }

    /// Restores a `snapshot()`; state of rules and correlations no longer loaded is dropped.
    /// `aggregation: false` keeps only the correlation windows (a reload reports open groups first).
    package mutating func restore(_ bytes: [UInt8], aggregation: Bool = true) throws {
        var r = SnapshotReader(bytes: bytes)
        guard try r.string() == Self.stateMagic else {
            throw CorrelationEngine.SnapshotError(description: "not a detector state of this version")
        }
        var engine = correlations
        try engine.restore(from: &r)
        correlations = engine
        if aggregation {
            var byID: [String: RuleSummary] = [:]
            for s in summaries { byID[s.id] = s }
            try aggregator.restore(from: &r, rules: byID)
        }
    }

    /// Per source, the earliest failure a session still holds (see `RuleSet.heldPositions`).
    /// Audit records still waiting for the rest of their event count as held too.
    package func heldPositions() -> [String: SourcePosition] {
        var held = rules.heldPositions(context: context)
        for p in audit.heldPositions().values { held.keepEarliest(p) }
        return held
    }

    /// Time moved on without events (live mode): closes aggregation windows that ended.
    package mutating func advance(to now: Int64, deliver: (Finding) -> Void) {
        audit.expire(now: now, into: &auditReady)
        detectAudit(now: now, deliver: deliver)
        hand(aggregator.advance(to: now), deliver)
    }

    /// Before the rules change: held session failures and open aggregation groups are reported
    /// (correlation windows stay open and move to the new detector).
    package mutating func settle(now: Int64, deliver: (Finding) -> Void) {
        audit.flush(into: &auditReady)
        detectAudit(now: now, deliver: deliver)
        for (pending, var event) in rules.drainPending(context: &context) { report(pending, &event, now: now, deliver) }
        hand(aggregator.flush(), deliver)
    }

    /// End of input: held session failures, open correlation windows and aggregation groups.
    package mutating func finish(now: Int64, deliver: (Finding) -> Void) {
        audit.flush(into: &auditReady)
        detectAudit(now: now, deliver: deliver)
        for (pending, var event) in rules.drainPending(context: &context) { report(pending, &event, now: now, deliver) }
        hand(correlations.flush().map { Finding(incident: $0, rule: correlationSummaries[$0.correlation]) }, deliver)
        hand(aggregator.flush(), deliver)
    }

    private mutating func hand(_ found: [Finding], _ deliver: (Finding) -> Void) {
        for var f in found {
            switch triage {
            case .builtin: triager.triage(&f)
            case .worker:
                triager.triage(&f)
                f.triage.note = "model triage requested; an update with the same uid follows"
            case .none: BuiltinTriager.untriaged(&f)
            }
            findings += 1
            deliver(f)
        }
    }
}
