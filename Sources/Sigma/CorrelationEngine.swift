import EventModel
import Foundation

/// One run of a correlation for one group: from the event that met the condition until the
/// group has been quiet for a whole timespan. A running attack extends its incident instead of
/// opening new ones.
package struct CorrelationIncident: Sendable {
    package var correlation: Int
    package var group: [(field: String, value: String)]
    package var firstSeen: Int64
    package var lastSeen: Int64
    /// Events of the group counted into the incident.
    package var count: Int
    /// The metric when the condition was first met (events, distinct values, sum, …).
    package var metric: Double
    /// The first contributing events, up to the evidence cap.
    package var evidences: [Event]
}

/// Evaluates Sigma correlation rules over rule matches, on event time.
///
/// Decisions the specification leaves open:
/// - Windows slide on event time and include both ends: events at `t` and `t + timespan` share a window.
/// - Events are taken in arrival order; one older than the newest of its group is placed by its
///   own time, so slightly out-of-order input still counts (lateness up to one timespan).
/// - After the condition holds, further events of the group extend the same incident; the incident
///   closes after one timespan without events and is then reported once, with the total count.
/// - A missing group-by field groups as the empty value.
/// - `temporal` counts distinct referenced rules in the window (default condition: all of them);
///   `temporal_ordered` needs them in the listed order within the window.
/// - Per correlation at most `maxGroups` groups are kept; past that the least recently active
///   group is evicted (counted in `evictions`). Groups idle for a timespan are dropped.
package struct CorrelationEngine {
    package let rules: RuleSet
    package var maxGroups: Int
    package var evidenceCap: Int
    package internal(set) var evictions = 0

    struct Entry {
        var time: Int64
        var number: Double
        /// A 64-bit hash of the counted value (0: none); distinct counts compare hashes.
        var value: UInt64
        var input: Int32
        /// How many events the entry stands for (`message repeated N times`).
        var weight: Int32
    }

    /// One group's window and incident; its key (the group-by values joined by U+001F, one small
    /// string rather than an array) is the dictionary key.
    struct Group {
        var window: [Entry] = []
        /// Live entries per distinct value (`value_count`, large windows only) or, for `temporal`,
        /// per referenced rule index.
        var values: [UInt64: Int] = [:]
        var sum = 0.0
        var lastTime: Int64 = .min
        // 32-bit halves keep the group (a dictionary slot) small; a million groups add up.
        private var head32: Int32 = 0
        private var events32: Int32 = 0
        /// Index of the first live entry of `window`.
        var head: Int {
            get { Int(head32) }
            set { head32 = Int32(newValue) }
        }
        /// Events in the window, repeats included.
        var events: Int {
            get { Int(events32) }
            set { events32 = Int32(clamping: newValue) }
        }
        /// The open incident, if any, held out of line so that quiet groups stay small.
        var incidentStore: [CorrelationIncident] = []
        /// The latest events of the group, packed into one buffer, for the incident's evidence.
        var recent = PackedEventList()

        var incident: CorrelationIncident? {
            get { incidentStore.first }
            set { incidentStore = newValue.map { [$0] } ?? [] }
        }
    }

    static let separator: Character = "\u{1F}"

    /// A group's key with its hash computed once: the key is looked up again each time the
    /// group surfaces in the activity heap, and as often as its group gets events.
    struct GroupKey: Hashable {
        let text: String
        private let hash: Int

        init(_ text: String) {
            self.text = text
            hash = text.hashValue
        }

        static func == (a: GroupKey, b: GroupKey) -> Bool { a.hash == b.hash && a.text == b.text }

        func hash(into hasher: inout Hasher) { hasher.combine(hash) }
    }

    /// Distinct values kept in a dictionary only past this many live entries; below, a scan is cheaper
    /// than a dictionary per group.
    static let smallWindow = 8

    var groups: [[GroupKey: Group]]
    /// Per correlation, one entry per group: a min-heap on a time at or before the group's last
    /// activity. An entry that surfaces stale (the group moved on) goes back in at the group's
    /// time, so quiet groups surface in order and an active group costs nothing per event.
    var activity: [ActivityHeap]
    var latest: Int64 = .min

    /// Per correlation and input: the event fields that form the group key, and the value field.
    private let groupFields: [[[String]]]
    private let valueFields: [[String?]]
    /// Per correlation and input, which distinct list of group-by fields it has: an event
    /// that several correlations count (sshd failures feed most of them), grouped by the
    /// same fields, has its key built and hashed once (`keys`).
    private let keySlot: [[Int]]
    /// Per distinct list of group-by fields, the key of the event being observed, valid when
    /// its stamp is `observed`.
    private var keys: [(stamp: UInt64, key: GroupKey)]
    private var observed: UInt64 = 0
    /// Per correlation, what counting needs of it.
    private let shapes: [Shape]

    /// What counting an event needs of a correlation: a copy of the whole `SigmaCorrelation`
    /// for each event would retain each of its strings and lists.
    struct Shape {
        let kind: SigmaCorrelation.Kind
        let timespanMicros: Int64
        let inputCount: Int
        let conditions: [(op: String, value: Double)]

        func holds(_ metric: Double) -> Bool { SigmaCorrelation.holds(conditions, metric) }
    }

    package init(rules: RuleSet, maxGroups: Int = 100_000, evidenceCap: Int = 10) {
        self.rules = rules
        func names(_ input: SigmaCorrelation.Input) -> [String] {
            switch input {
            case .rule(let r): [rules.rules[r].id] + (rules.rules[r].name.map { [$0] } ?? [])
            case .correlation(let k): [rules.correlations[k].id] + (rules.correlations[k].name.map { [$0] } ?? [])
            }
        }
        groupFields = rules.correlations.map { corr in corr.inputs.map { corr.groupFields(for: names($0)) } }
        var lists: [[String]] = []
        keySlot = groupFields.map { inputs in
            inputs.map { fields in
                if let known = lists.firstIndex(of: fields) { return known }
                lists.append(fields)
                return lists.count - 1
            }
        }
        keys = Array(repeating: (0, GroupKey("")), count: lists.count)
        valueFields = rules.correlations.map { corr in
            corr.inputs.map { input in
                corr.field.map { f in corr.aliases[f].flatMap { a in names(input).lazy.compactMap { a[$0] }.first } ?? f }
            }
        }
        shapes = rules.correlations.map { corr in
            Shape(kind: corr.kind, timespanMicros: corr.timespanMicros, inputCount: corr.inputs.count, conditions: corr.conditions)
        }
        self.maxGroups = maxGroups
        self.evidenceCap = evidenceCap
        groups = Array(repeating: [:], count: rules.correlations.count)
        activity = Array(repeating: ActivityHeap(), count: rules.correlations.count)
    }

    package var isEmpty: Bool { rules.correlations.isEmpty }
    package var groupCount: Int { groups.reduce(0) { $0 + $1.count } }

    /// Feeds a match of `rule`; returns incidents that closed because event time moved on.
    package mutating func observe(rule: Int, event: Event, time: Int64) -> [CorrelationIncident] {
        guard rule < rules.ruleConsumers.count else { return [] }
        observed &+= 1
        var closed = advance(to: time)
        // Packed once for the evidence of every group the event counts in.
        var packed: [UInt8]? = nil
        for c in rules.ruleConsumers[rule] {
            feed(c, input: .rule(rule), event: event, packed: &packed, time: time, closed: &closed)
        }
        return closed
    }

    private mutating func feed(
        _ c: Int, input: SigmaCorrelation.Input, event: Event, packed: inout [UInt8]?, time: Int64, closed: inout [CorrelationIncident]
    ) {
        // The correlation is read where it lies: a copy would retain each of its strings and lists.
        guard let inputIndex = rules.correlations[c].inputs.firstIndex(of: input) else { return }
        let kind = shapes[c].kind
        let fields = groupFields[c][inputIndex]
        let slot = keySlot[c][inputIndex]
        let key: GroupKey
        if keys[slot].stamp == observed {
            key = keys[slot].key
        } else {
            var text = ""
            for (k, f) in fields.enumerated() {
                if k > 0 { text.append(Self.separator) }
                event.fields.withFirst(f) { text += String(decoding: $0, as: UTF8.self) }
            }
            key = GroupKey(text)
            keys[slot] = (observed, key)
        }
        var value: String?
        var valueHash: UInt64 = 0
        var number = 0.0
        if let resolved = valueFields[c][inputIndex] {
            if kind == .valueSum || kind == .valueAvg {
                value = event.fields.first(resolved).map { String(decoding: $0, as: UTF8.self) }
                number = value.flatMap(Double.init) ?? 0
            }
            event.fields.withFirst(resolved) { v in
                var h = FNV1a()
                h.combine(v)
                valueHash = h.value | 1  // never 0, which means "no value"
            }
        }
        // The group is updated where it lies in the dictionary: a copy taken out and written back
        // would share its window and evidence buffers with the stored one, and copy them on append.
        var isNew = false
        var index = groups[c].index(forKey: key)
        if index == nil {
            if groups[c].count >= maxGroups { evictOldest(c, closed: &closed) }
            groups[c][key] = Group()
            index = groups[c].index(forKey: key)
            isNew = true
        }
        let entry = Entry(
            time: time, number: number, value: valueHash, input: Int32(inputIndex), weight: Int32(clamping: event.repeatCount))
        let (newest, started) = Self.absorb(
            entry, event: event, packed: &packed, into: &groups[c].values[index!], correlation: c, of: shapes[c], groupFields: fields,
            evidenceCap: evidenceCap)
        if isNew { activity[c].push(key: key, time: newest) }
        if started {
            // A correlation that fires is itself a match for the correlations it feeds.
            for parent in rules.correlationConsumers[c] {
                feed(parent, input: .correlation(c), event: event, packed: &packed, time: time, closed: &closed)
            }
        }
    }

    /// Counts `entry` (from `event`) into group `g` of correlation `c`: slides the window, updates
    /// the counts and the incident. Returns the group's newest time and whether an incident started.
    private static func absorb(
        _ entry: Entry, event: Event, packed: inout [UInt8]?, into g: inout Group, correlation c: Int, of corr: Shape,
        groupFields fields: [String], evidenceCap: Int
    ) -> (newest: Int64, started: Bool) {
        let time = entry.time
        let span = corr.timespanMicros
        let newest = max(g.lastTime, time)
        if !g.incidentStore.isEmpty {
            // An open incident only grows, until the group has been quiet for a timespan and
            // goes with it (`advance`): the window that opened it is not kept (see below).
            // Updated where it lies: through `incident` (a copy out, and a new one-element
            // array back in), each of these lines cost an allocation and a copy of the incident.
            g.lastTime = newest
            g.incidentStore[0].count += event.repeatCount
            g.incidentStore[0].lastSeen = max(g.incidentStore[0].lastSeen, time)
            if g.incidentStore[0].evidences.count < evidenceCap { g.incidentStore[0].evidences.append(event) }
            return (newest, false)
        }
        // Slide: drop entries older than the window ending at the newest time seen in the group.
        while g.head < g.window.count, g.window[g.head].time < newest - span {
            remove(g.window[g.head], from: &g, temporal: corr.kind == .temporal)
            g.head += 1
        }
        if time >= newest - span {
            if time >= g.lastTime || g.head == g.window.count {
                g.window.append(entry)
            } else {
                var at = g.window.count
                while at > g.head, g.window[at - 1].time > time { at -= 1 }
                g.window.insert(entry, at: at)
            }
            if entry.value != 0 {
                if !g.values.isEmpty {
                    g.values[entry.value, default: 0] += 1
                } else if g.window.count - g.head > Self.smallWindow {
                    // Crossing from a small window: count every live entry, the new one included.
                    for e in g.window[g.head...] where e.value != 0 { g.values[e.value, default: 0] += 1 }
                }
            }
            g.sum += entry.number
            g.events += event.repeatCount
            if corr.kind == .temporal { g.values[UInt64(entry.input), default: 0] += 1 }
            // The latest events, for the evidence of an incident yet to open.
            if packed == nil { packed = PackedEvent.pack(event) }
            g.recent.append(packed: packed!, keeping: evidenceCap)
        }
        if g.head > 1024, g.head * 2 > g.window.count {
            g.window.removeFirst(g.head)
            g.head = 0
        }
        g.lastTime = newest
        let live = g.window.count - g.head
        if live > 0, let metric = metric(corr, g), corr.holds(metric) {
            let first = g.window[g.head].time
            g.incident = CorrelationIncident(
                correlation: c,
                // Read the values from the event, not by splitting the key: a logged value may itself hold U+001F.
                group: fields.map { f in (f, event.fields.first(f).map { String(decoding: $0, as: UTF8.self) } ?? "") },
                firstSeen: first, lastSeen: time, count: g.events,
                // Evidence: the kept events that are still inside the window.
                metric: metric, evidences: g.recent.events().filter { ($0.time ?? first) >= first })
            // Cited now, and counted: an open incident keeps its later events itself.
            g.recent = PackedEventList()
            g.window = []
            g.head = 0
            g.values = [:]
            return (newest, true)
        }
        return (newest, false)
    }

    private static func remove(_ e: Entry, from g: inout Group, temporal: Bool) {
        if temporal || (e.value != 0 && !g.values.isEmpty) {
            let v = temporal ? UInt64(e.input) : e.value
            g.values[v, default: 1] -= 1
            if g.values[v]! <= 0 { g.values[v] = nil }
        }
        g.sum -= e.number
        g.events -= Int(e.weight)
    }

    private static func metric(_ corr: Shape, _ g: Group) -> Double? {
        let live = g.window[g.head...]
        switch corr.kind {
        case .eventCount: return Double(g.events)
        case .valueCount:
            if !g.values.isEmpty { return Double(g.values.count) }
            // A small window (see `smallWindow`): distinct values counted pairwise, with no set built.
            var distinct = 0
            for i in live.indices where live[i].value != 0 {
                let v = live[i].value
                if !live[live.startIndex..<i].contains(where: { $0.value == v }) { distinct += 1 }
            }
            return Double(distinct)
        case .valueSum: return g.sum
        case .valueAvg: return live.isEmpty ? nil : g.sum / Double(live.count)
        case .temporal: return Double(g.values.count)
        case .temporalOrdered:
            // The inputs in listed order as a subsequence of the window.
            var next = 0
            for e in live where next < corr.inputCount && Int(e.input) == next { next += 1 }
            return Double(next)
        }
    }

    /// Closes incidents and drops groups that have been quiet for a whole timespan before `time`.
    package mutating func advance(to time: Int64) -> [CorrelationIncident] {
        guard time > latest else { return [] }
        latest = time
        var closed: [CorrelationIncident] = []
        for c in groups.indices {
            let span = shapes[c].timespanMicros
            // The time alone first: most events find every heap's top inside its window.
            while let top = activity[c].minTime, top < time - span {
                // The group is read where it lies: a copy would retain each of its buffers.
                guard let i = groups[c].index(forKey: activity[c].minKey) else {
                    activity[c].popMin()
                    continue
                }
                let lastTime = groups[c].values[i].lastTime
                if lastTime >= time - span {
                    activity[c].updateMin(time: lastTime)
                    continue
                }
                activity[c].popMin()
                if let incident = groups[c].values[i].incident { closed.append(incident) }
                groups[c].remove(at: i)
            }
        }
        return closed
    }

    /// Evicts the least recently active group of correlation `c`.
    private mutating func evictOldest(_ c: Int, closed: inout [CorrelationIncident]) {
        while let top = activity[c].minTime {
            guard let i = groups[c].index(forKey: activity[c].minKey) else {
                activity[c].popMin()
                continue
            }
            let lastTime = groups[c].values[i].lastTime
            if lastTime != top {
                activity[c].updateMin(time: lastTime)
                continue
            }
            activity[c].popMin()
            if let incident = groups[c].values[i].incident { closed.append(incident) }
            groups[c].remove(at: i)
            evictions += 1
            return
        }
    }

    /// Closes every open incident (end of input).
    package mutating func flush() -> [CorrelationIncident] {
        var out: [CorrelationIncident] = []
        for c in groups.indices {
            for (_, g) in groups[c] { if let i = g.incident { out.append(i) } }
            groups[c].removeAll()
            activity[c] = ActivityHeap()
        }
        // Oldest first; ties in a fixed order (groups are kept in hashed order), so that a scan
        // writes the same output every run.
        return out.sorted { a, b in
            if a.firstSeen != b.firstSeen { return a.firstSeen < b.firstSeen }
            if a.correlation != b.correlation { return a.correlation < b.correlation }
            return a.group.lexicographicallyPrecedes(b.group) { ($0.field, $0.value) < ($1.field, $1.value) }
        }
    }
}

// MARK: - Snapshots

extension CorrelationEngine {
    /// Serialises the windows and open incidents (the live daemon checkpoints this), keyed by
    /// correlation id so that they survive rule reloads. A compact binary form: the daemon takes
    /// it with every commit, and windows of many groups must not stall detection.
    package func snapshot() -> [UInt8] {
        var w = SnapshotWriter()
        write(into: &w)
        return w.out
    }

    /// Appends the snapshot to `w` (the daemon's checkpoint streams several parts into one file).
    package func write(into w: inout SnapshotWriter) {
        w.bytes(Array(Self.snapshotMagic.utf8))
        w.varint(UInt64(bitPattern: latest))
        w.varint(UInt64(evictions))
        w.varint(UInt64(groups.count))
        for (c, groupsOfC) in groups.enumerated() {
            w.string(rules.correlations[c].id)
            w.varint(UInt64(groupsOfC.count))
            for (key, g) in groupsOfC {
                w.string(key.text)
                // Only live entries: what slid out of the window is never read again.
                let live = g.window[g.head...]
                w.varint(UInt64(live.count))
                for e in live {
                    w.varint(UInt64(bitPattern: e.time))
                    w.varint(e.number.bitPattern)
                    w.varint(e.value)
                    w.varint(UInt64(UInt32(bitPattern: e.input)))
                    w.varint(UInt64(UInt32(bitPattern: e.weight)))
                }
                w.varint(UInt64(g.values.count))
                for (v, n) in g.values {
                    w.varint(v)
                    w.varint(UInt64(n))
                }
                w.varint(g.sum.bitPattern)
                w.varint(UInt64(bitPattern: g.lastTime))
                w.varint(UInt64(g.events))
                w.varint(UInt64(g.incidentStore.count))
                for incident in g.incidentStore {
                    w.varint(UInt64(incident.group.count))
                    for (field, value) in incident.group {
                        w.string(field)
                        w.string(value)
                    }
                    w.varint(UInt64(bitPattern: incident.firstSeen))
                    w.varint(UInt64(bitPattern: incident.lastSeen))
                    w.varint(UInt64(incident.count))
                    w.varint(incident.metric.bitPattern)
                    w.varint(UInt64(incident.evidences.count))
                    for e in incident.evidences { w.bytes(PackedEvent(e).bytes) }
                }
                w.bytes(g.recent.storage)
                w.varint(UInt64(g.recent.count))
            }
        }
    }

    static let snapshotMagic = "logtriage-correlation-3"

    package struct SnapshotError: Error, CustomStringConvertible {
        package var description: String
        package init(description: String) { self.description = description }
    }

    /// Restores a snapshot taken by `snapshot()`; correlations no longer loaded are skipped.
    package mutating func restore(_ bytes: [UInt8]) throws {
        var r = SnapshotReader(bytes: bytes)
        try restore(from: &r)
    }

    /// Reads a snapshot written by `write(into:)` from `r`.
    package mutating func restore(from r: inout SnapshotReader) throws {
        guard try r.bytes() == Array(Self.snapshotMagic.utf8) else {
            throw SnapshotError(description: "not a correlation snapshot of this version")
        }
        let latest = Int64(bitPattern: try r.varint())
        let evictions = Int(try r.varint())
        var byID: [String: [GroupKey: Group]] = [:]
        for _ in 0..<(try r.count()) {
            let id = try r.string()
            var groupsOfC: [GroupKey: Group] = [:]
            for _ in 0..<(try r.count()) {
                let key = GroupKey(try r.string())
                var g = Group()
                for _ in 0..<(try r.count()) {
                    let time = Int64(bitPattern: try r.varint())
                    let number = Double(bitPattern: try r.varint())
                    let value = try r.varint()
                    let input = Int32(bitPattern: UInt32(truncatingIfNeeded: try r.varint()))
                    let weight = Int32(bitPattern: UInt32(truncatingIfNeeded: try r.varint()))
                    g.window.append(Entry(time: time, number: number, value: value, input: input, weight: weight))
                }
                for _ in 0..<(try r.count()) {
                    let v = try r.varint()
                    g.values[v] = Int(try r.varint())
                }
                g.sum = Double(bitPattern: try r.varint())
                g.lastTime = Int64(bitPattern: try r.varint())
                g.events = Int(try r.varint())
                for _ in 0..<(try r.count()) {
                    var group: [(field: String, value: String)] = []
                    for _ in 0..<(try r.count()) { group.append((try r.string(), try r.string())) }
                    let firstSeen = Int64(bitPattern: try r.varint())
                    let lastSeen = Int64(bitPattern: try r.varint())
                    let count = Int(try r.varint())
                    let metric = Double(bitPattern: try r.varint())
                    var evidences: [Event] = []
                    for _ in 0..<(try r.count()) { evidences.append(PackedEvent(bytes: try r.bytes()).unpacked()) }
                    g.incidentStore.append(
                        CorrelationIncident(
                            correlation: 0, group: group, firstSeen: firstSeen, lastSeen: lastSeen, count: count, metric: metric,
                            evidences: evidences))
                }
                let recent = try r.bytes()
                g.recent = PackedEventList(storage: recent, count: Int(try r.varint()))
                groupsOfC[key] = g
            }
            byID[id] = groupsOfC
        }
        self.latest = latest
        self.evictions = evictions
        for (c, corr) in rules.correlations.enumerated() {
            groups[c] = [:]
            activity[c] = ActivityHeap()
            for (key, var g) in byID[corr.id] ?? [:] {
                if !g.incidentStore.isEmpty { g.incidentStore[0].correlation = c }
                groups[c][key] = g
                activity[c].push(key: key, time: g.lastTime)
            }
        }
    }
}

/// A binary min-heap of group keys by time.
struct ActivityHeap {
    private var items: [(key: CorrelationEngine.GroupKey, time: Int64)] = []

    /// The earliest time, read without copying its key (the test made for every event).
    var minTime: Int64? { items.first?.time }
    /// The key of the earliest time; the heap must not be empty.
    var minKey: CorrelationEngine.GroupKey { items[0].key }
    var count: Int { items.count }

    mutating func push(key: CorrelationEngine.GroupKey, time: Int64) {
        items.append((key, time))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[parent].time > items[i].time else { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    mutating func popMin() {
        guard !items.isEmpty else { return }
        let last = items.removeLast()
        guard !items.isEmpty else { return }
        items[0] = last
        siftDown()
    }

    /// Moves the earliest entry to `time`: a pop and a push in one.
    mutating func updateMin(time: Int64) {
        items[0].time = time
        siftDown()
    }

    private mutating func siftDown() {
        var i = 0
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var smallest = i
            if l < items.count, items[l].time < items[smallest].time { smallest = l }
            if r < items.count, items[r].time < items[smallest].time { smallest = r }
            if smallest == i { break }
            items.swapAt(i, smallest)
            i = smallest
        }
    }
}

/// Varints and length-prefixed byte strings, for snapshots.
/// With a sink, the buffer goes to the sink whenever it passes 64 KiB (and at `finish`), so
/// a large snapshot streams to its file instead of being held whole in memory.
package struct SnapshotWriter {
    package var out: [UInt8] = []
    private let sink: ((UnsafeRawBufferPointer) -> Bool)?
    /// The sink refused a write (the rest is dropped; `finish` reports it).
    package private(set) var failed = false

    package init() { sink = nil }

    package init(sink: @escaping (UnsafeRawBufferPointer) -> Bool) {
        self.sink = sink
        out.reserveCapacity(1 << 17)
    }

    private mutating func spill(force: Bool = false) {
        guard let sink, force || out.count >= 1 << 16 else { return }
        if !failed, !out.isEmpty { failed = !out.withUnsafeBytes(sink) }
        out.removeAll(keepingCapacity: true)
    }

    /// Hands what is left to the sink; false if any write failed.
    package mutating func finish() -> Bool {
        spill(force: true)
        return !failed
    }

    package mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    package mutating func bytes(_ b: [UInt8]) {
        varint(UInt64(b.count))
        out.append(contentsOf: b)
        spill()
    }

    package mutating func string(_ s: String) { bytes(Array(s.utf8)) }
}

package struct SnapshotReader {
    let data: [UInt8]
    var i = 0

    package init(bytes: [UInt8]) { data = bytes }

    package mutating func varint() throws -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while i < data.count, shift < 64 {
            let b = data[i]
            i += 1
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
        throw CorrelationEngine.SnapshotError(description: "snapshot cut short at byte \(i)")
    }

    /// A count that must fit in what is left (a corrupt count must not allocate without bound).
    package mutating func count() throws -> Int {
        let n = try varint()
        guard n <= UInt64(data.count - i) else { throw CorrelationEngine.SnapshotError(description: "bad count at byte \(i)") }
        return Int(n)
    }

    package mutating func bytes() throws -> [UInt8] {
        let n = try count()
        defer { i += n }
        return Array(data[i..<(i + n)])
    }

    package mutating func string() throws -> String { String(decoding: try bytes(), as: UTF8.self) }
}
