import Testing

@testable import Sigma

struct SessionMemoryTests {
    typealias Shown = RuleSet.SessionMemory.Shown

    /// What a session showed is kept per field: a value a later line shows replaces the old
    /// one, a field the line lacks keeps its value, and an empty value is a value.
    @Test func shownValuesAreKeptPerField() {
        var shown = Shown()
        #expect(shown.value(0) == nil && shown.value(1) == nil)
        let first = Array("Connection from 192.0.2.7".utf8)
        shown.update(from: first, ranges: [16..<25, nil])
        #expect(shown.value(0).map(Array.init) == Array("192.0.2.7".utf8))
        #expect(shown.value(1) == nil)
        first.withUnsafeBufferPointer { line in
            let address = UnsafeBufferPointer(rebasing: line[16..<25])
            #expect(shown.holds(0, address) && !shown.holds(1, address))
        }
        let second = Array("user alice".utf8)
        shown.update(from: second, ranges: [nil, 5..<10])
        #expect(shown.value(0).map(Array.init) == Array("192.0.2.7".utf8))
        #expect(shown.value(1).map(Array.init) == Array("alice".utf8))
        let third = Array("from 2001:db8::1 user ".utf8)
        shown.update(from: third, ranges: [5..<16, 22..<22])
        #expect(shown.value(0).map(Array.init) == Array("2001:db8::1".utf8))
        #expect(shown.value(1).map(Array.init) == [])
        #expect(shown.value(2) == nil)
    }

    /// Values too long to lie in the session (an address and a user name usually do) are kept
    /// alike, and a session goes back to holding them inline when they shrink.
    @Test func longValuesAreKeptToo() {
        var shown = Shown()
        let user = String(repeating: "u", count: 60)
        let line = Array("from 198.51.100.4 user \(user)".utf8)
        shown.update(from: line, ranges: [5..<17, 23..<line.count])
        #expect(shown.value(0) == Array("198.51.100.4".utf8))
        #expect(shown.value(1) == Array(user.utf8))
        let short = Array("user bob".utf8)
        shown.update(from: short, ranges: [nil, 5..<8])
        #expect(shown.value(0) == Array("198.51.100.4".utf8))
        #expect(shown.value(1) == Array("bob".utf8))
        short.withUnsafeBufferPointer { short in
            #expect(shown.holds(1, UnsafeBufferPointer(rebasing: short[5..<8])))
            #expect(!shown.holds(0, UnsafeBufferPointer(rebasing: short[5..<8])))
        }
    }
}
