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
    /// Live mode: a group's first event is reported at once, and when the group closes with
    /// more events, an update of the same finding (same uid, `activity` update) with the totals.
    package var reportsFirst = false
    package private(set) var closedEarly = 0
    private var open: [Key: Finding] = [:]
    /// Open groups in the order their expiry was last checked: (key, last-seen time when queued).
    /// A group that saw events since it was queued is queued again when it reaches the front,
    /// so expiry is amortised O(1) per event instead of a scan of every open group.
    private var queue: [(key: Key, lastSeen: Int64)] = []
    private var head = 0
    private var latest: Int64 = .min

    /// A group's rule and observables. The hash is computed once: a key is looked up again
    /// each time its group's expiry is checked, and hashing its strings every time cost more
    /// than the rest of the check.
    struct Key: Hashable {
        let rule: String
        let observables: [Observable]
        private let hash: Int

        init(rule: String, observables: [Observable]) {
            self.rule = rule
            self.observables = observables
            var h = Hasher()
            h.combine(rule)
            // Names left out: they follow from the fields (and `==` compares them), and
            // hashing a string is most of the cost of a key.
            h.combine(observables.count)
            for o in observables {
                h.combine(o.typeID)
                h.combine(o.value)
            }
            hash = h.finalize()
        }

        static func == (a: Key, b: Key) -> Bool {
            a.hash == b.hash && a.rule == b.rule && a.observables == b.observables
        }

        func hash(into hasher: inout Hasher) { hasher.combine(hash) }
    }

    package init(windowSeconds: Int = 300, evidenceCap: Int = 10, maxOpenGroups: Int = 100_000) {
        windowMicros = Int64(windowSeconds) * 1_000_000
        self.evidenceCap = evidenceCap
        self.maxOpenGroups = maxOpenGroups
    }

    package var openGroups: Int { open.count }

    /// Adds a matched event; returns findings whose windows closed because time moved on.
    package mutating func add(rule: RuleSummary, event: Event, time: Int64) -> [Finding] {
        var closed: [Finding] = []
        if time > latest {
            latest = time
            closeExpired(before: time - windowMicros, into: &closed)
        }
        let observables = Observable.from(event)
        let key = Key(rule: rule.id, observables: observables)
        if windowMicros > 0, let i = open.index(forKey: key) {
            // Found once, updated in place (the key is hashed once per event, not per update).
            Self.fold(event, time: time, evidenceCap: evidenceCap, into: &open.values[i])
            return closed
        }
        let finding = Finding(
            uid: FindingID.make(ruleID: rule.id, position: event.position), rule: rule, firstSeen: time, lastSeen: time,
            count: event.repeatCount, evidences: [event], observables: observables,
            hostname: event.string(FieldName.hostname), triage: .init(riskScore: 0, source: "none"))
        if windowMicros <= 0 { return closed + [finding] }
        while open.count >= maxOpenGroups, head < queue.count {
            // Over the cap: close the group queued longest ago.
            let oldest = queue[head].key
            head += 1
            if let f = open.removeValue(forKey: oldest) {
                report(f, into: &closed)
                closedEarly += 1
            }
        }
        open[key] = finding
        queue.append((key, time))
        compact()
        if reportsFirst { closed.append(finding) }
        return closed
    }

    /// Counts a repeat into its group's finding.
    private static func fold(_ event: Event, time: Int64, evidenceCap: Int, into f: inout Finding) {
        f.count += event.repeatCount
        f.firstSeen = min(f.firstSeen, time)
        f.lastSeen = max(f.lastSeen, time)
        if f.evidences.count < evidenceCap { f.evidences.append(event) }
    }

    /// Closes the groups whose window ended before `time` (live mode: wall time moves on while no events arrive).
    package mutating func advance(to time: Int64) -> [Finding] {
        var closed: [Finding] = []
        if time > latest {
            latest = time
            closeExpired(before: time - windowMicros, into: &closed)
        }
        return closed
    }

    /// A closing group: in live mode only when it grew after its first report, as an update.
    private func report(_ f: Finding, into closed: inout [Finding]) {
        guard reportsFirst else {
            closed.append(f)
            return
        }
        guard f.count > f.evidences.first.map({ $0.repeatCount }) ?? 1 else { return }
        var update = f
        update.activity = .update
        closed.append(update)
    }

    private mutating func closeExpired(before cutoff: Int64, into closed: inout [Finding]) {
        while head < queue.count, queue[head].lastSeen < cutoff {
            let (key, _) = queue[head]
            head += 1
            // Read where it lies and moved out when it closes: a copy of the finding would
            // retain its evidence and strings only to drop them again.
            guard let i = open.index(forKey: key) else { continue }
            let lastSeen = open.values[i].lastSeen
            if lastSeen < cutoff {
                // Its own statement: as an argument of `report`, whose `self` is evaluated
                // first, the removal would find the dictionary shared and copy it whole.
                let f = open.remove(at: i).value
                report(f, into: &closed)
            } else {
                queue.append((key, lastSeen))
            }
        }
        compact()
    }

    private mutating func compact() {
        if head > 4096, head * 2 > queue.count {
            queue.removeFirst(head)
            head = 0
        }
    }

    /// Closes every open group (end of input), oldest first.
    package mutating func flush() -> [Finding] {
        var out: [Finding] = []
        for (key, _) in queue[head...] {
            if let f = open.removeValue(forKey: key) { report(f, into: &out) }
        }
        queue.removeAll()
        head = 0
        return out
    }
}

extension Aggregator {
    /// The open groups (live mode: findings already reported whose totals update is pending),
    /// for the daemon's checkpoint, so that a crash does not lose the update.
    package func write(into w: inout SnapshotWriter) {
        w.varint(UInt64(bitPattern: latest))
        let live = queue[head...].compactMap { entry in open[entry.key].map { (entry.key, $0) } }
        var seen = Set<Key>()
        let groups = live.filter { seen.insert($0.0).inserted }
        w.varint(UInt64(groups.count))
        for (key, f) in groups {
            w.string(key.rule)
            w.varint(UInt64(key.observables.count))
            for o in key.observables {
                w.string(o.name)
                w.varint(UInt64(o.typeID))
                w.string(o.value)
            }
            w.string(f.uid)
            w.varint(UInt64(bitPattern: f.firstSeen))
            w.varint(UInt64(bitPattern: f.lastSeen))
            w.varint(UInt64(f.count))
            w.string(f.hostname ?? "")
            w.varint(UInt64(f.evidences.count))
            for e in f.evidences { w.bytes(PackedEvent(e).bytes) }
        }
    }

    /// Restores open groups; groups of rules no longer loaded (`rules` by id) are dropped.
    package mutating func restore(from r: inout SnapshotReader, rules: [String: RuleSummary]) throws {
        latest = Int64(bitPattern: try r.varint())
        for _ in 0..<(try r.count()) {
            let rule = try r.string()
            var observables: [Observable] = []
            for _ in 0..<(try r.count()) {
                let name = try r.string()
                let typeID = Int(try r.varint())
                observables.append(Observable(name: name, typeID: typeID, value: try r.string()))
            }
            let uid = try r.string()
            let firstSeen = Int64(bitPattern: try r.varint())
            let lastSeen = Int64(bitPattern: try r.varint())
            let count = Int(try r.varint())
            let hostname = try r.string()
            var evidences: [Event] = []
            for _ in 0..<(try r.count()) { evidences.append(PackedEvent(bytes: try r.bytes()).unpacked()) }
            guard let summary = rules[rule] else { continue }
            let key = Key(rule: rule, observables: observables)
            open[key] = Finding(
                uid: uid, rule: summary, firstSeen: firstSeen, lastSeen: lastSeen, count: count, evidences: evidences,
                observables: observables, hostname: hostname.isEmpty ? nil : hostname, triage: .init(riskScore: 0, source: "none"))
            queue.append((key, lastSeen))
        }
    }
}
