import EventModel
import Findings
import Foundation
import Sigma
import TestSupport
import Testing

struct JSONWriterTests {
    @Test func controlBytesAndInvalidUTF8AreEscaped() throws {
        var w = JSONWriter()
        w.beginObject()
        w.field("m", bytes: [0x41, 0x00, 0x1B, 0x5B, 0x22, 0x5C, 0x0A, 0xFF, 0xC3, 0x28, 0xC3, 0xA9, 0xC2, 0x85])
        w.endObject()
        let text = try #require(String(bytes: w.bytes, encoding: .utf8))
        #expect(text == #"{"m":"A\u0000\u001b[\"\\\n\#u{FFFD}\#u{FFFD}(é\u0085"}"#)
        #expect(!w.bytes.contains(0) && !w.bytes.contains(0x1B))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(w.bytes)) as? [String: String])
        #expect(object["m"]?.hasPrefix("A\u{0}\u{1B}") == true)
    }

    @Test("every byte that needs escaping is caught at every position of a long value")
    func escapingAtEveryPosition() throws {
        // Escaped, invalid, and the plain bytes either side of each escaped range.
        let specials: [UInt8] = [0x00, 0x01, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x5B, 0x5C, 0x5D, 0x7E, 0x7F, 0x80, 0xC3, 0xFF]
        for special in specials {
            for length in [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 23, 32, 33] {
                for at in 0..<length {
                    var value = Array(repeating: UInt8(ascii: "a"), count: length)
                    value[at] = special
                    var w = JSONWriter()
                    w.beginObject()
                    w.field("m", bytes: value)
                    w.endObject()
                    let object = try JSONSerialization.jsonObject(with: Data(w.bytes)) as? [String: String]
                    let decoded = try #require(object?["m"], "\(special) at \(at) of \(length)")
                    let expected =
                        special < 0x80
                        ? String(decoding: value, as: UTF8.self)
                        : String(repeating: "a", count: at) + "\u{FFFD}" + String(repeating: "a", count: length - at - 1)
                    #expect(decoded == expected, "\(special) at \(at) of \(length)")
                    #expect(!w.bytes.contains { $0 < 0x20 }, "\(special) at \(at) of \(length)")
                    // The same text as a key and a value from a log, after a plain member.
                    var logged = JSONWriter()
                    logged.beginObject()
                    logged.field("p", bytes: Array("plain".utf8))
                    value.withUnsafeBufferPointer { logged.field(key: $0, bytes: $0) }
                    logged.endObject()
                    let pair = try JSONSerialization.jsonObject(with: Data(logged.bytes)) as? [String: String]
                    #expect(pair == ["p": "plain", expected: expected], "\(special) at \(at) of \(length)")
                }
            }
        }
        // Plain ASCII of any length, punctuation included, is written as it is.
        var w = JSONWriter()
        w.beginObject()
        w.field("m", bytes: Array(" !#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}~".utf8))
        w.endObject()
        #expect(String(decoding: w.bytes, as: UTF8.self) == #"{"m":" !#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}~"}"#)
    }
}

extension JSONWriterTests {
    @Test("keys and values of every length up to past the short copies, written byte for byte")
    func everyLength() throws {
        let text = Array("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL".utf8)
        var w = JSONWriter()
        w.beginObject()
        // Keys written in the source, of 1 to 17 bytes; keys and values from logs, of 0 to 48.
        let keys: [JSONKey] = [
            "a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh", "abcdefghi", "abcdefghijklmno", "abcdefghijklmnop",
            "abcdefghijklmnopq",
        ]
        for (i, k) in keys.enumerated() { w.field(k, bytes: text.prefix(i)) }
        w.endObject()
        var logged = JSONWriter()
        logged.beginObject()
        for n in 1...48 {
            text.prefix(n).withUnsafeBufferPointer { key in
                text.prefix(n - 1).withUnsafeBufferPointer { logged.field(key: key, bytes: $0) }
            }
        }
        logged.endObject()
        let first = try #require(try JSONSerialization.jsonObject(with: Data(w.bytes)) as? [String: String])
        #expect(
            first == [
                "a": "", "ab": "a", "abc": "ab", "abcd": "abc", "abcde": "abcd", "abcdef": "abcde", "abcdefg": "abcdef",
                "abcdefgh": "abcdefg",
                "abcdefghi": "abcdefgh", "abcdefghijklmno": "abcdefghi", "abcdefghijklmnop": "abcdefghij",
                "abcdefghijklmnopq": "abcdefghijk",
            ])
        let second = try #require(try JSONSerialization.jsonObject(with: Data(logged.bytes)) as? [String: String])
        #expect(second.count == 48)
        for n in 1...48 {
            #expect(second[String(decoding: text.prefix(n), as: UTF8.self)] == String(decoding: text.prefix(n - 1), as: UTF8.self))
        }
    }

    @Test("numbers, nesting and keys taken from logs")
    func numbersNestingAndKeys() throws {
        var w = JSONWriter()
        w.beginObject()
        for (i, v) in [0, 7, -5, 1_234_567_890, Int64.max, Int64.min].enumerated() { w.field(JSONKey("n\(i)"), v) }
        w.beginArray("list")
        w.beginObject()
        let logged = "a\"b\u{1}"  // a name from a log (a literal would be taken as a plain source key)
        w.field(JSONKey(logged), "x")
        w.endObject()
        w.beginObject()
        w.endObject()
        w.endArray()
        w.field("last", true)
        w.endObject()
        let text = String(decoding: w.bytes, as: UTF8.self)
        #expect(
            text
                == #"{"n0":0,"n1":7,"n2":-5,"n3":1234567890,"n4":9223372036854775807,"n5":-9223372036854775808,"list":[{"a\"b\u0001":"x"},{}],"last":true}"#
        )
        #expect(try JSONSerialization.jsonObject(with: Data(w.bytes)) is [String: Any])
    }

    @Test("a string written in parts is the string written whole; a reused writer starts clean")
    func stringInPartsAndReuse() throws {
        let parts = ["SSH failed", " (", "user.name", "=", "r\"o\\ot\u{1}\u{1B}[31m", ", ", "é€😀 and more than eight", ")", " ×", ""]
        var whole = JSONWriter()
        whole.beginObject()
        whole.field("message", parts.joined() + "12")
        whole.endObject()
        var w = JSONWriter()
        for _ in 0..<2 {
            w.removeAll()
            w.beginObject()
            w.beginString("message")
            for p in parts { w.stringPart(p) }
            w.stringPart(decimal: 12)
            w.endString()
            w.endObject()
            #expect(w.bytes == whole.bytes)
        }
        w.newline()
        let line = w.withBytes { Array($0) }
        #expect(line == whole.bytes + [10])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(whole.bytes)) as? [String: String])
        #expect(object["message"] == parts.joined() + "12")
    }

    @Test("integers of every length, either side of each power of ten, as Swift prints them")
    func integersOfEveryLength() {
        var values: [Int64] = [0, Int64.max, Int64.min, Int64.min + 1]
        var power: Int64 = 1
        for _ in 0..<19 {
            values += [power, power - 1, power + 1, -power, -(power - 1), power * 5 - 3]
            if power <= Int64.max / 10 { power *= 10 }
        }
        for v in values {
            var w = JSONWriter()
            w.beginObject()
            w.field("n", v)
            w.endObject()
            #expect(String(decoding: w.bytes, as: UTF8.self) == "{\"n\":\(v)}")
        }
    }
}

struct TextBuilderTests {
    @Test("counts in texts are written as Swift prints them")
    func integersAsSwiftPrintsThem() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, -1, -10, -987_654_321, Int.max, Int.min] {
            var t = TextBuilder(capacity: 8)
            t.append("n=")
            t.append(n)
            #expect(t.string == "n=\(n)")
        }
    }
}

/// The word-at-a-time byte tests agree with the byte-by-byte rules they replace, for every
/// byte value at every position of a word and of the tail.
struct ByteScanTests {
    @Test func wordTestsAgreeWithBytewiseRules() {
        for length in [1, 7, 8, 9, 16, 19] {
            for position in 0..<length {
                for byte in UInt8.min...UInt8.max {
                    var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    bytes[position] = byte
                    bytes.withUnsafeBufferPointer { b in
                        #expect(SafeText.isPrintableASCII(b) == (byte >= 0x20 && byte < 0x7F), "\(byte) at \(position) of \(length)")
                        #expect(Fold.hasNonASCII(b) == (byte >= 0x80), "\(byte) at \(position) of \(length)")
                    }
                }
            }
        }
        for byte in UInt8.min...UInt8.max { #expect(Fold.lower(byte) == Fold.table[Int(byte)]) }
    }
}

struct FindingIDTests {
    @Test func deterministicAndDistinct() {
        let p = SourcePosition(source: "/var/log/auth.log", line: 3, offset: 120)
        let a = FindingID.make(ruleID: "r1", position: p)
        #expect(a == FindingID.make(ruleID: "r1", position: p))
        #expect(a != FindingID.make(ruleID: "r2", position: p))
        #expect(a != FindingID.make(ruleID: "r1", position: SourcePosition(source: "/var/log/auth.log", line: 4, offset: 121)))
        #expect(a.count == 36 && a.split(separator: "-").map(\.count) == [8, 4, 4, 4, 12])
    }
}

struct ObservableTests {
    static func observables(_ fields: [(String, String)]) -> [Observable] {
        var e = Event(position: SourcePosition(source: "f", line: 1, offset: 0))
        for (name, value) in fields { e.fields.add(name, value) }
        return Observable.from(e)
    }

    @Test(
        "a source address is an IP when it parses as one, else a host name",
        arguments: [
            ("203.0.113.5", "src_endpoint.ip", 2, "203.0.113.5"),
            ("::ffff:198.51.100.7", "src_endpoint.ip", 2, "198.51.100.7"),
            ("2001:db8::1", "src_endpoint.ip", 2, "2001:db8::1"),
            ("gw.example.net", "src_endpoint.hostname", 1, "gw.example.net"),
            ("203.0.113.256", "src_endpoint.hostname", 1, "203.0.113.256"),
            ("::ffff:gw", "src_endpoint.hostname", 1, "::ffff:gw"),
        ])
    func sourceAddress(text: String, name: String, typeID: Int, value: String) {
        let found = Self.observables([("source.address", text)])
        #expect(found.map(\.name) == [name])
        #expect(found.map(\.typeID) == [typeID])
        #expect(found.map(\.value) == [value])
    }

    @Test func fieldOrderOneProcessAndNoRepeats() {
        let found = Self.observables([
            (FieldName.identifier, "sshd"), ("comm", "sshd-session"), ("user.target", "root"), ("user.name", "root"),
            (FieldName.hostname, "web1"), ("source.ip", "192.0.2.9"), ("source.address", "192.0.2.9"), ("user.name", "eve"),
        ])
        // In the order of `Observable.fieldMap`; the first process name only; an address named
        // twice once; the first value of a repeated field.
        #expect(found.map(\.name) == ["src_endpoint.ip", "user.name", "device.hostname", "process.name"])
        #expect(found.map(\.value) == ["192.0.2.9", "root", "web1", "sshd-session"])
    }

    @Test func controlCharactersAreCleanedAndLongValuesLeftOut() {
        let found = Self.observables([("user.name", "ro\u{1B}[31mot"), (FieldName.hostname, String(repeating: "h", count: 513))])
        #expect(found.count == 1)
        #expect(found.first?.name == "user.name")
        #expect(found.first?.value.unicodeScalars.contains { $0.value < 0x20 } == false)
    }
}

struct AggregatorTests {
    static func rule() throws -> RuleSummary {
        let (set, _) = try Fixtures.ruleSet(
            "title: t\nid: agg-rule\nauthor: a\nlogsource: {product: linux}\ndetection:\n    k: ['x']\n    condition: k\nlevel: high\n")
        return RuleSummary(try #require(set.rules.first))
    }

    static func event(_ offset: UInt64, ip: String, repeats: Int = 1) -> Event {
        var e = Event(position: SourcePosition(source: "f", line: Int(offset), offset: offset), repeatCount: repeats)
        e.fields.add("source.ip", ip)
        return e
    }

    @Test func repeatsFoldWithinTheWindowAndSplitAfterIt() throws {
        let rule = try Self.rule()
        var agg = Aggregator(windowSeconds: 60)
        let s: Int64 = 1_000_000
        var out: [Finding] = []
        out += agg.add(rule: rule, event: Self.event(1, ip: "1.1.1.1"), time: 0)
        out += agg.add(rule: rule, event: Self.event(2, ip: "1.1.1.1", repeats: 3), time: 30 * s)
        out += agg.add(rule: rule, event: Self.event(3, ip: "2.2.2.2"), time: 60 * s)
        out += agg.add(rule: rule, event: Self.event(4, ip: "1.1.1.1"), time: 90 * s)  // 60 s after the last: same group
        #expect(out.isEmpty)
        out += agg.add(rule: rule, event: Self.event(5, ip: "1.1.1.1"), time: 151 * s + 1)  // 61 s of quiet: closes
        #expect(out.count == 2)
        let first = try #require(out.first { $0.observables.first?.value == "1.1.1.1" })
        #expect(first.count == 5)
        #expect(first.firstSeen == 0 && first.lastSeen == 90 * s)
        #expect(first.evidences.count == 3)
        #expect(first.uid == FindingID.make(ruleID: "agg-rule", position: SourcePosition(source: "f", line: 1, offset: 1)))
        let rest = agg.flush()
        #expect(rest.count == 1 && rest[0].count == 1)
    }

    @Test("a group is one rule and the same observables, names included")
    func groupsByNamesAndValues() throws {
        let rule = try Self.rule()
        var agg = Aggregator(windowSeconds: 60)
        func event(_ offset: UInt64, _ fields: [(String, String)]) -> Event {
            var e = Event(position: SourcePosition(source: "f", line: Int(offset), offset: offset))
            for (name, value) in fields { e.fields.add(name, value) }
            return e
        }
        // The same value as a source host name and as a device host name, a user name twice,
        // and the same values in another observable: four groups, one of them with two events.
        _ = agg.add(rule: rule, event: event(1, [("source.address", "gw")]), time: 0)
        _ = agg.add(rule: rule, event: event(2, [(FieldName.hostname, "gw")]), time: 1)
        _ = agg.add(rule: rule, event: event(3, [("user.name", "alice")]), time: 2)
        _ = agg.add(rule: rule, event: event(4, [("user.target", "alice")]), time: 3)
        _ = agg.add(rule: rule, event: event(5, [("user.name", "alice"), (FieldName.hostname, "gw")]), time: 4)
        let found = agg.flush()
        #expect(found.count == 4)
        #expect(found.map(\.count).sorted() == [1, 1, 1, 2])
        let twice = try #require(found.first { $0.count == 2 })
        #expect(twice.observables.map(\.value) == ["alice"])
    }

    @Test func openGroupsAreCapped() throws {
        let rule = try Self.rule()
        var agg = Aggregator(windowSeconds: 600, maxOpenGroups: 10)
        var closed: [Finding] = []
        for i in 0..<25 { closed += agg.add(rule: rule, event: Self.event(UInt64(i), ip: "10.0.0.\(i)"), time: Int64(i)) }
        #expect(agg.openGroups == 10)
        #expect(closed.count == 15)
        #expect(agg.closedEarly == 15)
        #expect(agg.flush().count == 10)
    }
}
