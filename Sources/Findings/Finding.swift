import EventModel
import Sigma

/// A detection: one rule matching one or more events that share an aggregation key.
package struct Finding: Sendable {
    package var uid: String
    package var rule: RuleSummary
    package var firstSeen: Int64
    package var lastSeen: Int64
    package var count: Int
    /// The first events (up to the evidence cap), each with its source position.
    package var evidences: [Event]
    package var observables: [Observable]
    package var hostname: String?
    package var activity: Activity = .create
    package var triage: Triage
    /// Why the evidence looks like text written to instruct a language model (empty when it does not).
    package var injection: [String] = []

    package enum Activity: Int, Sendable {
        case create = 1
        case update = 2
    }

    /// The triage a finding carries: its rank, why, and what to do.
    package struct Triage: Sendable {
        package var riskScore: Int
        package var explanation: String?
        package var remediation: String?
        package var confidence: Int?
        /// `builtin`, `worker` or `none`, and why when the worker's answer was not used.
        package var source: String
        package var note: String?
        /// The model that produced this triage, and who served it.
        package var model: String?
        package var provider: String?
        /// The worker's verdict: `malicious`, `suspicious` or `benign`.
        package var verdict: String?
        /// The lowest score triage may give: the rule level's base score.
        package var floor: Int = 0

        package init(riskScore: Int, source: String) {
            self.riskScore = riskScore
            self.source = source
        }
    }

    package var severity: Severity { rule.level }
}

/// The rule facts a finding carries (the Sigma licence requires the author).
///
/// The facts lie in one shared, immutable object: a summary is copied for every match (into the
/// aggregator, the correlation engine and each finding), and a copy is then one reference count
/// instead of one per string and list.
package struct RuleSummary: Sendable {
    /// The facts as the rule gives them (and the ATT&CK ids its tags name).
    struct Facts: Sendable {
        let id: String
        let title: String
        let description: String?
        let author: String?
        let level: Severity
        let status: String?
        let tags: [String]
        let techniques: [String]
        let tactics: [String]
        let references: [String]
        let falsePositives: [String]
        let file: String
    }

    private final class Storage: Sendable {
        let facts: Facts
        let fragments: RuleFragments

        init(_ facts: Facts) {
            self.facts = facts
            fragments = RuleFragments(facts)
        }
    }

    private let storage: Storage

    package var id: String { storage.facts.id }
    package var title: String { storage.facts.title }
    package var description: String? { storage.facts.description }
    package var author: String? { storage.facts.author }
    package var level: Severity { storage.facts.level }
    package var status: String? { storage.facts.status }
    package var tags: [String] { storage.facts.tags }
    package var techniques: [String] { storage.facts.techniques }
    package var tactics: [String] { storage.facts.tactics }
    package var references: [String] { storage.facts.references }
    package var falsePositives: [String] { storage.facts.falsePositives }
    package var file: String { storage.facts.file }
    /// The parts of a finding that come from the rule alone, encoded once (see `RuleFragments`).
    package var fragments: RuleFragments { storage.fragments }

    package init(_ rule: SigmaRule) {
        self.init(
            id: rule.id, title: rule.title, description: rule.description, author: rule.author, level: rule.level,
            status: rule.status, tags: rule.tags, references: rule.references, falsePositives: rule.falsePositives,
            file: rule.location.file)
    }

    package init(_ c: SigmaCorrelation) {
        self.init(
            id: c.id, title: c.title, description: c.description, author: c.author, level: c.level, status: c.status,
            tags: c.tags, references: c.references, falsePositives: c.falsePositives, file: c.location.file)
    }

    /// A finding the daemon raises about itself (lost input), not a Sigma rule's.
    package static func daemon(id: String, title: String, description: String, level: Severity, tags: [String]) -> RuleSummary {
        RuleSummary(
            id: id, title: title, description: description, author: "logtriage", level: level, status: "stable", tags: tags,
            references: [], falsePositives: [], file: "<logtriage>")
    }

    private init(
        id: String, title: String, description: String?, author: String?, level: Severity, status: String?, tags: [String],
        references: [String], falsePositives: [String], file: String
    ) {
        storage = Storage(
            Facts(
                id: id, title: title, description: description, author: author, level: level, status: status, tags: tags,
                techniques: AttackTags.techniques(tags), tactics: AttackTags.tactics(tags), references: references,
                falsePositives: falsePositives, file: file))
    }
}

extension Finding {
    /// A finding about one event, raised by the daemon itself rather than by a rule (`RuleSummary.daemon`).
    package init(notice rule: RuleSummary, event: Event) {
        let time = event.time ?? 0
        self.init(
            uid: FindingID.make(ruleID: rule.id, position: event.position), rule: rule, firstSeen: time, lastSeen: time, count: 1,
            evidences: [event], observables: Observable.from(event), hostname: event.string(FieldName.hostname),
            triage: .init(riskScore: 0, source: "none"))
    }

    /// A finding for a correlation incident: group-by values become observables.
    package init(incident: CorrelationIncident, rule: RuleSummary) {
        var probe = Event(position: incident.evidences.first?.position ?? SourcePosition(source: "-", line: 0, offset: 0))
        for (field, value) in incident.group where !value.isEmpty { probe.fields.add(field, value) }
        var observables = Observable.from(probe)
        for e in incident.evidences.prefix(1) {
            // Only the context every event of the group shares: where it happened.
            for o in Observable.from(e) where (o.typeID == 1 || o.typeID == 9) && !observables.contains(where: { $0.typeID == o.typeID }) {
                observables.append(o)
            }
        }
        self.init(
            uid: FindingID.make(ruleID: rule.id, position: probe.position), rule: rule, firstSeen: incident.firstSeen,
            lastSeen: incident.lastSeen, count: incident.count, evidences: incident.evidences, observables: observables,
            hostname: incident.evidences.first?.string(FieldName.hostname), triage: .init(riskScore: 0, source: "none"))
    }
}

/// An entity a finding names: a source address, a user, a host, a process.
package struct Observable: Sendable, Hashable {
    package var name: String
    /// OCSF observable type: 1 hostname, 2 IP address, 4 user name, 9 process name, 11 port.
    package var typeID: Int
    package var value: String

    package init(name: String, typeID: Int, value: String) {
        self.name = name
        self.typeID = typeID
        self.value = value
    }

    /// Event fields that become observables, with their OCSF names and types.
    package static let fieldMap: [(field: String, name: String, typeID: Int)] = [
        ("source.ip", "src_endpoint.ip", 2),
        ("source.address", "src_endpoint.hostname", 1),
        ("user.name", "user.name", 4),
        ("user.target", "user.name", 4),
        (FieldName.hostname, "device.hostname", 1),
        ("process.crashed", "process.name", 9),
        // An audit event's program (its name as the kernel records it), else the logging program.
        ("comm", "process.name", 9),
        (FieldName.identifier, "process.name", 9),
    ]

    /// `fieldMap`'s fields, for finding their first values in one pass over an event.
    private static let fieldNames = FieldNameSet(fieldMap.map(\.field))
    /// The index of `source.address` in `fieldMap`: its value is an IP or a host name.
    private static let sourceAddress = fieldMap.firstIndex { $0.field == "source.address" }!

    /// The observables an event names, in `fieldMap` order, without duplicates.
    package static func from(_ event: Event) -> [Observable] {
        // Per event, for every match: scratch on the stack, and addresses tested without
        // building them.
        withUnsafeTemporaryAllocation(of: Range<Int>?.self, capacity: fieldMap.count) { ranges in
            ranges.initialize(repeating: nil)
            event.fields.firstRanges(of: fieldNames, into: ranges)
            return event.fields.storage.withUnsafeBufferPointer { storage in
                var out: [Observable] = []
                // Most events name an address, a user, a host and a program: one allocation, not three.
                out.reserveCapacity(4)
                for m in ranges.indices {
                    guard let range = ranges[m] else { continue }
                    let raw = UnsafeBufferPointer(rebasing: storage[range])
                    guard !raw.isEmpty, raw.count <= 512 else { continue }
                    var typeID = fieldMap[m].typeID
                    if typeID == 9, out.contains(where: { $0.typeID == 9 }) { continue }
                    // Observables are what analysts read in dashboards and terminals: no control characters.
                    var value = SafeText.isPrintableASCII(raw) ? String(decoding: raw, as: UTF8.self) : SafeText.clean(raw)
                    if m == sourceAddress, IPAddress.isAddress(raw) {
                        // A textual address is an IP if it parses as one, else a host name.
                        typeID = 2
                    }
                    if typeID == 2, raw.starts(with: "::ffff:".utf8), IPAddress.isAddress(UnsafeBufferPointer(rebasing: raw.dropFirst(7))) {
                        value = String(value.dropFirst(7))
                    }
                    let obs = Observable(name: typeID == 2 ? "src_endpoint.ip" : fieldMap[m].name, typeID: typeID, value: value)
                    if !out.contains(obs) { out.append(obs) }
                }
                return out
            }
        }
    }
}

/// Deterministic finding ids: the same rule and first event always give the same uid, so a
/// replay after a crash repeats it and consumers can deduplicate.
package enum FindingID {
    package static func make(ruleID: String, position: SourcePosition) -> String {
        var h = Hash()
        h.mix(ruleID)
        h.mix(0x7C)
        h.mix(position.source)
        h.mix(0x7C)
        var offset = position.offset
        for _ in 0..<8 {
            h.mix(UInt8(truncatingIfNeeded: offset))
            offset >>= 8
        }
        h.mix(0x7C)
        if let cursor = position.cursor { h.mix(cursor) }
        return h.text
    }

    /// Two FNV-style lanes, the second fed from the first.
    private struct Hash {
        var a: UInt64 = 0xcbf2_9ce4_8422_2325
        var b: UInt64 = 0x8422_2325_cbf2_9ce4

        @inline(__always)
        mutating func mix(_ byte: UInt8) {
            a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 ^ (a >> 29)
        }

        /// The string's UTF-8 bytes, read where they lie.
        mutating func mix(_ s: String) {
            var s = s
            s.withUTF8 { for c in $0 { mix(c) } }
        }

        /// 32 hex digits of a then b, with dashes after the 8th, 12th, 16th and 20th: a UUID's shape.
        var text: String {
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 36) { out in
                var i = 0
                for n in 0..<32 {
                    if n == 8 || n == 12 || n == 16 || n == 20 {
                        out[i] = UInt8(ascii: "-")
                        i += 1
                    }
                    let word = n < 16 ? a : b
                    let digit = UInt8(truncatingIfNeeded: (word >> UInt64((15 - n % 16) * 4)) & 0xF)
                    out[i] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
                    i += 1
                }
                return String(decoding: UnsafeBufferPointer(out), as: UTF8.self)
            }
        }
    }
}
