import EventModel
import Sigma

/// Folds repeats of one rule on one key (its observables) within a window into one finding.
///
/// A group closes when event time moves past its last event plus the window, or when the
/// input ends; closed findings come out in the order they closed. The number of open groups
/// is capped: past the cap the oldest group closes early (counted), so memory stays bounded.
package struct Aggregator {
    package var windowMicros: Int64
    package var evidenceCap: Int
    package var maxOpenGroups: Int
    package private(set) var closedEarly = 0
    private var open: [Key: Finding] = [:]
    private var order: [Key] = []
    private var latest: Int64 = .min

    struct Key: Hashable {
        var rule: String
        var observables: [Observable]
    }

    package init(windowSeconds: Int = 300, evidenceCap: Int = 10, maxOpenGroups: Int = 100_000) {
        windowMicros = Int64(windowSeconds) * 1_000_000
        self.evidenceCap = evidenceCap
        self.maxOpenGroups = maxOpenGroups
    }

    /// Adds a matched event; returns findings whose windows closed because time moved on.
    package mutating func add(rule: RuleSummary, event: Event, time: Int64) -> [Finding] {
        var closed: [Finding] = []
        if time > latest {
            latest = time
            closed = closeExpired(before: time - windowMicros)
        }
        let observables = Observable.from(event)
        let key = Key(rule: rule.id, observables: observables)
        if windowMicros > 0, var f = open[key] {
            f.count += event.repeatCount
            f.firstSeen = min(f.firstSeen, time)
            f.lastSeen = max(f.lastSeen, time)
            if f.evidences.count < evidenceCap { f.evidences.append(event) }
            open[key] = f
            return closed
        }
        let finding = Finding(
            uid: FindingID.make(ruleID: rule.id, position: event.position), rule: rule, firstSeen: time, lastSeen: time,
            count: event.repeatCount, evidences: [event], observables: observables,
            hostname: event.string(FieldName.hostname), triage: .init(riskScore: 0, source: "none"))
        if windowMicros <= 0 { return closed + [finding] }
        if open.count >= maxOpenGroups, let oldest = order.first {
            order.removeFirst()
            if let f = open.removeValue(forKey: oldest) {
                closed.append(f)
                closedEarly += 1
            }
        }
        open[key] = finding
        order.append(key)
        return closed
    }

    private mutating func closeExpired(before cutoff: Int64) -> [Finding] {
        guard !open.isEmpty else { return [] }
        var closed: [Finding] = []
        var keep: [Key] = []
        for key in order {
            guard let f = open[key] else { continue }
            if f.lastSeen < cutoff {
                closed.append(f)
                open[key] = nil
            } else {
                keep.append(key)
            }
        }
        order = keep
        return closed
    }

    /// Closes every open group (end of input).
    package mutating func flush() -> [Finding] {
        let out = order.compactMap { open[$0] }
        open.removeAll()
        order.removeAll()
        return out
    }
}
