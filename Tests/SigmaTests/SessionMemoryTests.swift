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
}
