import EventModel
import Testing

struct CivilTimeTests {
    @Test(arguments: [
        (1970, 1, 1, 0, 0, 0, Int64(0)),
        (2000, 2, 29, 12, 0, 0, Int64(951_825_600_000_000)),
        (2024, 12, 31, 23, 59, 59, Int64(1_735_689_599_000_000)),
        (1969, 12, 31, 23, 59, 59, Int64(-1_000_000)),
    ])
    func roundTrip(_ y: Int, _ mo: Int, _ d: Int, _ h: Int, _ mi: Int, _ s: Int, _ micros: Int64) {
        #expect(CivilTime.micros(year: y, month: mo, day: d, hour: h, minute: mi, second: s) == micros)
        let c = CivilTime.civil(micros: micros)
        #expect([c.year, c.month, c.day, c.hour, c.minute, c.second] == [y, mo, d, h, mi, s])
    }

    @Test func rfc3339() {
        #expect(CivilTime.rfc3339(micros: 1_700_000_000_123_456) == "2023-11-14T22:13:20.123Z")
    }
}

struct EventFieldsTests {
    @Test func rangesRepeatsAndRemoval() {
        var f = EventFields(backing: Array("sshd[12]: hello".utf8))
        f.add("SYSLOG_IDENTIFIER", range: 0..<4)
        f.add("_PID", range: 5..<7)
        f.add("X", "one")
        f.add("X", "two")
        #expect(f.first("SYSLOG_IDENTIFIER").map { String(decoding: $0, as: UTF8.self) } == "sshd")
        #expect(f.first("_PID").map { String(decoding: $0, as: UTF8.self) } == "12")
        #expect(f.all("X").map { String(decoding: $0, as: UTF8.self) } == ["one", "two"])
        #expect(f.anyValue("X") { $0.elementsEqual("two".utf8) })
        f.set("X", "three")
        #expect(f.all("X").count == 1)
        f.remove("_PID")
        #expect(!f.contains("_PID"))
        #expect(f.first("missing") == nil)
    }
}

struct PackedEventTests {
    @Test func roundTrip() {
        var e = Event(
            time: -5, position: SourcePosition(source: "/var/log/auth.log", line: 7, offset: 1 << 40, cursor: "s=abc"), repeatCount: 3)
        e.fields.add("MESSAGE", bytes: [0, 0xFF, 0x41] + Array(repeating: UInt8(ascii: "x"), count: 300))
        e.fields.add("X", "one")
        e.fields.add("X", "two")
        let back = PackedEvent(e).unpacked()
        #expect(back.time == -5 && back.repeatCount == 3)
        #expect(back.position == e.position)
        #expect(back.fields.all("X").map { String(decoding: $0, as: UTF8.self) } == ["one", "two"])
        #expect(Array(back.fields.first("MESSAGE")!) == Array(e.fields.first("MESSAGE")!))
        let untimed = PackedEvent(Event(position: SourcePosition(source: "-", line: 1, offset: 0))).unpacked()
        #expect(untimed.time == nil && untimed.position.cursor == nil && untimed.fields.isEmpty)
    }

    @Test("marks survive packing, with a cursor or without, and a form without them reads as unmarked")
    func marks() {
        for cursor in ["s=abc", nil] {
            var e = Event(position: SourcePosition(source: "-", line: 1, offset: 0, cursor: cursor))
            e.marks = 0x8000_1F05
            let back = PackedEvent(e).unpacked()
            #expect(back.marks == 0x8000_1F05)
            #expect(back.position.cursor == cursor)
        }
        // Packed before marks existed: the cursor flag alone (1), then the cursor.
        var old = PackedEvent(Event(position: SourcePosition(source: "-", line: 1, offset: 0, cursor: "s=abc"))).bytes
        #expect(old[5] == 1 << 0 && old[6] == 5)
        old[5] = 1
        let back = PackedEvent(bytes: old).unpacked()
        #expect(back.marks == 0 && back.position.cursor == "s=abc")
    }
}

struct SourcePositionTests {
    @Test("a journal entry's stamps become the cursor sd-journal accepts, equal to the same cursor given as text")
    func stampsWriteTheCursor() {
        // The boot id's bytes in order: 00 11 22 … ff.
        let boot = (UInt64(0x7766_5544_3322_1100), UInt64(0xFFEE_DDCC_BBAA_9988))
        let stamps = JournalStamps(boot: BootID(boot), monotonic: 0x1F, realtime: 1_700_000_000_000_000)
        let text = "b=00112233445566778899aabbccddeeff;m=1f;t=60a24181e4000"
        #expect(stamps.cursor == text)
        let p = SourcePosition(source: "journal", line: 3, offset: 0, stamps: stamps)
        #expect(p.cursor == text)
        #expect(p == SourcePosition(source: "journal", line: 3, offset: 0, cursor: text))
        #expect(p.hashValue == SourcePosition(source: "journal", line: 3, offset: 0, cursor: text).hashValue)
        #expect(p.description == "journal@\(text)")
        #expect(PackedEvent(Event(position: p)).unpacked().position == p)
        #expect(JournalStamps(boot: nil, monotonic: 0, realtime: 0).cursor == "t=0")
        #expect(
            JournalStamps(boot: BootID((0, 0)), monotonic: 0, realtime: nil).cursor == "b=" + String(repeating: "0", count: 32) + ";m=0")
        var replaced = p
        replaced.cursor = "s=1"
        #expect(replaced.cursor == "s=1")
    }
}

struct PackedEventListTests {
    @Test func keepsTheLatest() {
        var list = PackedEventList()
        for i in 0..<25 {
            var e = Event(position: SourcePosition(source: "f", line: i, offset: UInt64(i)))
            e.fields.add("MESSAGE", "event \(i)")
            list.append(e, keeping: 10)
        }
        let events = list.events()
        #expect(list.count == 10 && events.count == 10)
        #expect(events.map(\.position.line) == Array(15..<25))
        #expect(events.last?.string("MESSAGE") == "event 24")
        // The stored form (snapshots) holds the live events only, whatever the list dropped.
        let restored = PackedEventList(storage: list.storage, count: list.count)
        #expect(restored.events().map(\.position.line) == Array(15..<25))
        #expect(list.storage.count < 10 * 40)
    }

    private static func event(_ i: Int) -> Event {
        var e = Event(position: SourcePosition(source: "f", line: i, offset: UInt64(i)))
        e.fields.add("MESSAGE", "event \(i)")
        return e
    }

    @Test("each event keeps its own source, when the one before it had the same, another of the same length, or none")
    func sourcesOfMixedEvents() {
        let sources = ["/var/log/a.log", "/var/log/a.log", "/var/log/b.log", "/var/log/a.lo", "", "-", "/var/log/a.log"]
        var list = PackedEventList()
        for (i, source) in sources.enumerated() {
            list.append(Event(position: SourcePosition(source: source, line: i, offset: 0)), keeping: -1)
        }
        #expect(list.events().map(\.position.source) == sources)
    }

    @Test func keepsOrderAcrossRestoresAndLimits() {
        var list = PackedEventList()
        for i in 0..<13 { list.append(Self.event(i), keeping: 5) }
        // A restored list goes on dropping its oldest first.
        var restored = PackedEventList(storage: list.storage, count: list.count)
        for i in 13..<15 { restored.append(Self.event(i), keeping: 5) }
        #expect(restored.events().map(\.position.line) == Array(10..<15))
        // A smaller limit after the ring turned keeps the newest, in order.
        list.append(Self.event(13), keeping: 3)
        #expect(list.events().map(\.position.line) == [11, 12, 13])
        list.append(Self.event(14), keeping: 3)
        #expect(list.events().map(\.position.line) == [12, 13, 14])
        // A larger one lets it grow again.
        for i in 15..<18 { list.append(Self.event(i), keeping: 5) }
        #expect(list.events().map(\.position.line) == Array(13..<18))
        // A negative limit keeps every event; zero keeps none.
        var all = PackedEventList()
        for i in 0..<30 { all.append(Self.event(i), keeping: -1) }
        #expect(all.events().map(\.position.line) == Array(0..<30))
        all.append(Self.event(30), keeping: 0)
        #expect(all.count == 0)
    }
}
