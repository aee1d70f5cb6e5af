import EventModel
import Sigma
import TestSupport
import Testing

struct CorrelationTests {
    static func engine(type: String, condition: String, timespan: String = "10m", extra: String = "") throws -> (RuleSet, CorrelationEngine)
    {
        let yaml = """
            title: base
            id: base-rule
            name: base
            logsource: {product: linux}
            detection:
                k: ['fail']
                condition: k
            ---
            title: second
            id: second-rule
            name: second
            logsource: {product: linux}
            detection:
                k: ['ok']
                condition: k
            ---
            title: corr
            id: corr-rule
            correlation:
                type: \(type)
                rules: [\(type.hasPrefix("temporal") ? "base, second" : "base")]
                group-by: [src]
                timespan: \(timespan)
            \(condition.isEmpty ? "" : "    condition: \(condition)")
            \(extra)
            """
        let (set, report) = try Fixtures.ruleSet(yaml)
        #expect(report.errors.isEmpty, "\(report.errors)")
        return (set, CorrelationEngine(rules: set))
    }

    static func event(_ rule: String, src: String = "1.2.3.4", user: String = "u") -> Event {
        var e = Event(position: SourcePosition(source: "t", line: 1, offset: 0))
        e.fields.add("MESSAGE", rule)
        e.fields.add("src", src)
        e.fields.add("user", user)
        return e
    }

    /// Feeds `times` (seconds) as matches of the base rule and counts the incidents reported.
    static func incidents(
        _ set: RuleSet, _ engine: inout CorrelationEngine, _ times: [Int64], rule: Int = 0, user: (Int) -> String = { _ in "u" }
    )
        -> Int
    {
        var n = 0
        for (i, t) in times.enumerated() {
            n += engine.observe(rule: rule, event: event("fail", user: user(i)), time: t * 1_000_000).count
        }
        return n + engine.flush().count
    }

    @Test(arguments: [(4, 0), (5, 1), (6, 1)])
    func thresholdBoundary(_ events: Int, _ expected: Int) throws {
        var (set, engine) = try Self.engine(type: "event_count", condition: "{gte: 5}")
        #expect(Self.incidents(set, &engine, (0..<events).map { Int64($0) }) == expected)
    }

    @Test(arguments: [(Int64(599), 1), (Int64(600), 1), (Int64(601), 0)])
    func windowBoundaryIsInclusive(_ lastAt: Int64, _ expected: Int) throws {
        var (set, engine) = try Self.engine(type: "event_count", condition: "{gte: 5}")
        #expect(Self.incidents(set, &engine, [0, 1, 2, 3, lastAt]) == expected)
    }

    @Test func evidenceIsWhatTheWindowHolds() throws {
        var (_, engine) = try Self.engine(type: "event_count", condition: "{gte: 3}")
        for t: Int64 in [0, 700, 701, 702] {
            var e = Self.event("fail")
            e.time = t * 1_000_000
            _ = engine.observe(rule: 0, event: e, time: t * 1_000_000)
        }
        let incident = try #require(engine.flush().first)
        #expect(incident.firstSeen == 700_000_000)
        #expect(incident.evidences.map(\.time) == [700_000_000, 701_000_000, 702_000_000])
    }

    @Test("incidents left open at the end come out oldest first, ties in the order of their groups, every run")
    func flushOrderIsFixed() throws {
        let (_, template) = try Self.engine(type: "event_count", condition: "{gte: 2}")
        let sources = (0..<40).map { "10.0.0.\($0)" }
        for _ in 0..<3 {
            var engine = template
            for src in sources.shuffled() {
                for t: Int64 in [5, 6] { _ = engine.observe(rule: 0, event: Self.event("fail", src: src), time: t * 1_000_000) }
            }
            _ = engine.observe(rule: 0, event: Self.event("fail", src: "10.0.1.1"), time: 1_000_000)
            _ = engine.observe(rule: 0, event: Self.event("fail", src: "10.0.1.1"), time: 2_000_000)
            let order = engine.flush().map { $0.group.map(\.value).joined() }
            #expect(order == ["10.0.1.1"] + sources.sorted())
        }
    }

    @Test("an open incident counts every later event, cites the first up to the cap, and a new one starts afresh")
    func openIncidentGrowsThenCloses() throws {
        var (_, engine) = try Self.engine(type: "event_count", condition: "{gte: 3}")
        engine.evidenceCap = 5
        var incidents: [CorrelationIncident] = []
        func feed(_ seconds: Int64, line: Int) {
            var e = Self.event("fail")
            e.time = seconds * 1_000_000
            e.position.line = line
            incidents += engine.observe(rule: 0, event: e, time: seconds * 1_000_000)
        }
        for t in 0..<23 { feed(Int64(t), line: t) }
        #expect(incidents.isEmpty)
        // Ten minutes and one second of quiet after the last: the first incident closes.
        for t in 0..<3 { feed(623 + Int64(t), line: 100 + t) }
        #expect(incidents.count == 1)
        let first = try #require(incidents.first)
        #expect(first.count == 23 && first.metric == 3)
        #expect(first.firstSeen == 0 && first.lastSeen == 22_000_000)
        #expect(first.evidences.map(\.position.line) == [0, 1, 2, 3, 4])
        incidents += engine.flush()
        #expect(incidents.count == 2)
        let second = incidents[1]
        #expect(second.count == 3 && second.firstSeen == 623_000_000)
        #expect(second.evidences.map(\.position.line) == [100, 101, 102])
    }

    @Test func lateEventsWithinTheWindowStillCount() throws {
        var (set, engine) = try Self.engine(type: "event_count", condition: "{gte: 5}")
        // The fourth event arrives after the fifth; it is placed by its own time.
        #expect(Self.incidents(set, &engine, [0, 10, 20, 40, 30]) == 1)
        // One older than a whole timespan before the newest is too late to count.
        #expect(Self.incidents(set, &engine, [700, 710, 720, 730, 0]) == 0)
    }

    @Test func aQuietGapStartsANewIncident() throws {
        var (set, engine) = try Self.engine(type: "event_count", condition: "{gte: 3}")
        // Two bursts of three, 20 minutes apart (the timespan is 10 minutes).
        #expect(Self.incidents(set, &engine, [0, 1, 2, 1200, 1201, 1202]) == 2)
        // A steady stream, one event a minute for an hour, stays one incident.
        #expect(Self.incidents(set, &engine, (0..<60).map { Int64($0) * 60 }) == 1)
    }

    /// A group that went quiet closes on time even while groups created after its last event
    /// stay active: an event after the gap starts a new incident rather than joining the old one.
    @Test func quietGroupClosesWhileNewerGroupsLive() throws {
        var (set, engine) = try Self.engine(type: "event_count", condition: "{gte: 3}")
        var incidents = 0
        func feed(_ src: String, _ seconds: Int64) {
            incidents += engine.observe(rule: 0, event: Self.event("fail", src: src), time: seconds * 1_000_000).count
        }
        // A: active from 0 to 900. B: created at 950 (after A's last event), active to 1600.
        for t in stride(from: Int64(0), through: 900, by: 50) { feed("10.0.0.1", t) }
        for t in stride(from: Int64(950), through: 1500, by: 50) { feed("10.0.0.2", t) }
        // A was quiet from 900 to 1510 (more than the 10-minute timespan): a new burst is a new incident.
        for t in [Int64(1510), 1511, 1512] { feed("10.0.0.1", t) }
        for t in stride(from: Int64(1550), through: 1600, by: 50) { feed("10.0.0.2", t) }
        incidents += engine.flush().count
        #expect(incidents == 3, "A before the gap, A after it, and B")
        _ = set
    }

    @Test func valueCountCountsDistinctValues() throws {
        var (set, engine) = try Self.engine(type: "value_count", condition: "{field: user, gte: 3}")
        #expect(Self.incidents(set, &engine, [0, 1, 2, 3], user: { ["a", "a", "b", "a"][$0] }) == 0)
        #expect(Self.incidents(set, &engine, [0, 1, 2], user: { ["a", "b", "c"][$0] }) == 1)
    }

    @Test func temporalOrderedNeedsTheOrder() throws {
        var (set, engine) = try Self.engine(type: "temporal_ordered", condition: "")
        var n = engine.observe(rule: 1, event: Self.event("ok"), time: 0).count
        n += engine.observe(rule: 0, event: Self.event("fail"), time: 1_000_000).count
        #expect(n + engine.flush().count == 0)
        n = engine.observe(rule: 0, event: Self.event("fail"), time: 0).count
        n += engine.observe(rule: 1, event: Self.event("ok"), time: 1_000_000).count
        #expect(n + engine.flush().count == 1)
    }

    @Test func temporalNeedsEveryRuleInTheWindow() throws {
        var (_, engine) = try Self.engine(type: "temporal", condition: "")
        // Any order within the window fires.
        var n = engine.observe(rule: 1, event: Self.event("ok"), time: 0).count
        n += engine.observe(rule: 0, event: Self.event("fail"), time: 60_000_000).count
        #expect(n + engine.flush().count == 1)
        // Repeats of one rule do not.
        for t in 0..<5 { _ = engine.observe(rule: 0, event: Self.event("fail"), time: Int64(t) * 1_000_000) }
        #expect(engine.flush().isEmpty)
        // The first rule slid out of the window before the second arrived.
        _ = engine.observe(rule: 0, event: Self.event("fail"), time: 0)
        _ = engine.observe(rule: 1, event: Self.event("ok"), time: 660_000_000)
        #expect(engine.flush().isEmpty)
    }

    @Test func groupsAreSeparate() throws {
        var (_, engine) = try Self.engine(type: "event_count", condition: "{gte: 3}")
        var n = 0
        for i in 0..<6 { n += engine.observe(rule: 0, event: Self.event("fail", src: i % 2 == 0 ? "a" : "b"), time: Int64(i)).count }
        let closed = engine.flush()
        #expect(n == 0 && closed.count == 2)
        #expect(Set(closed.map { $0.group.first!.value }) == ["a", "b"])
    }

    @Test func groupCapEvictsAndCounts() throws {
        var (_, engine) = try Self.engine(type: "event_count", condition: "{gte: 2}")
        engine.maxGroups = 100
        for i in 0..<1000 { _ = engine.observe(rule: 0, event: Self.event("fail", src: "10.0.\(i / 256).\(i % 256)"), time: Int64(i)) }
        #expect(engine.groupCount <= 100)
        #expect(engine.evictions == 900)
    }

    @Test func windowSurvivesSnapshotAndRestore() throws {
        // Three failures before a restart and two after still make five within the window.
        var (set, engine) = try Self.engine(type: "event_count", condition: "{gte: 5}")
        for t in 0..<3 { #expect(engine.observe(rule: 0, event: Self.event("fail"), time: Int64(t) * 60_000_000).isEmpty) }
        let saved = engine.snapshot()
        var restored = CorrelationEngine(rules: set)
        try restored.restore(saved)
        for t in 3..<5 { #expect(restored.observe(rule: 0, event: Self.event("fail"), time: Int64(t) * 60_000_000).isEmpty) }
        let incidents = restored.flush()
        #expect(incidents.count == 1)
        #expect(incidents.first?.count == 5)
        #expect(incidents.first?.firstSeen == 0)
        #expect(incidents.first?.evidences.first?.string("MESSAGE") == "fail")
        // Without the snapshot the two later failures alone do not fire.
        var fresh = CorrelationEngine(rules: set)
        for t in 3..<5 { _ = fresh.observe(rule: 0, event: Self.event("fail"), time: Int64(t) * 60_000_000) }
        #expect(fresh.flush().isEmpty)
    }

    @Test func snapshotOfAnOpenIncidentKeepsItOpen() throws {
        var (set, engine) = try Self.engine(type: "event_count", condition: "{gte: 2}")
        for t in 0..<3 { _ = engine.observe(rule: 0, event: Self.event("fail"), time: Int64(t) * 1_000_000) }
        var restored = CorrelationEngine(rules: set)
        try restored.restore(engine.snapshot())
        _ = restored.observe(rule: 0, event: Self.event("fail"), time: 4_000_000)
        let incidents = restored.flush()
        #expect(incidents.count == 1 && incidents[0].count == 4)
    }

    @Test func invalidCorrelationsAreRejected() throws {
        let yaml = """
            title: c
            id: c1
            correlation:
                type: event_count
                rules: [nosuchrule]
                group-by: [x]
                timespan: 5m
                condition: {gte: 2}
            ---
            title: d
            id: d1
            correlation:
                type: value_percentile
                rules: [x]
                timespan: 5m
            ---
            title: e
            id: e1
            correlation:
                type: event_count
                rules: [x]
                timespan: forever
                condition: {gte: 2}
            """
        let (_, report) = try Fixtures.ruleSet(yaml)
        #expect(report.rejected == 3)
        #expect(report.errors.contains { $0.message.contains("references 'nosuchrule'") })
        #expect(report.errors.contains { $0.message.contains("value_percentile") })
        #expect(report.errors.contains { $0.message.contains("timespan") })
    }
}
