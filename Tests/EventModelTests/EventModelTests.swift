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
