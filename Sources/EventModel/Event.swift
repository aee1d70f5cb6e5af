/// One log record, normalised to journald-style field names.
///
/// Field values are bytes: log text is attacker-controlled and need not be UTF-8. Values live
/// in one contiguous buffer so that a parsed line costs a few allocations, not one per field.
package struct Event: Sendable {
    /// Event time in microseconds since the Unix epoch (UTC), if the record carried one.
    package var time: Int64?
    /// What a screen of the event's text found, in the screen's own bits (0: not screened yet).
    /// Kept with the event so that its text is read once, while it is in cache, however often
    /// findings cite the event later. (Declared after `time`, it lies in that optional's padding.)
    package var marks: UInt32 = 0
    /// Where the record came from, so that a finding can cite it and a checkpoint can resume after it.
    package var position: SourcePosition
    /// How many identical records this one stands for (`message repeated N times`).
    package var repeatCount: Int
    package var fields: EventFields

    package init(time: Int64? = nil, position: SourcePosition, repeatCount: Int = 1, fields: EventFields = EventFields()) {
        self.time = time
        self.position = position
        self.repeatCount = repeatCount
        self.fields = fields
    }

    /// The first value of `name` decoded as UTF-8 (invalid sequences repaired), or nil.
    package func string(_ name: String) -> String? {
        fields.first(name).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// Where a record starts in its source.
package struct SourcePosition: Sendable, Hashable {
    /// A file path, `-` for standard input, or a listener address.
    package var source: String
    /// 1-based line (or entry) number within the source.
    package var line: Int
    /// Byte offset of the record's first byte.
    package var offset: UInt64
    /// An opaque resume token where the source has one (a journal cursor).
    package var cursor: String? {
        get {
            switch token {
            case .none: nil
            case .text(let text): text
            case .stamps(let stamps): stamps.cursor
            }
        }
        set { token = newValue.map { .text($0) } }
    }
    private var token: Token?

    /// A cursor as text, or as a journal entry's stamps, written out only when asked (most
    /// events never are: only those that become findings or are committed).
    private enum Token: Sendable {
        case text(String)
        case stamps(JournalStamps)
    }

    package init(source: String, line: Int, offset: UInt64, cursor: String? = nil) {
        self.source = source
        self.line = line
        self.offset = offset
        self.token = cursor.map { .text($0) }
    }

    package init(source: String, line: Int, offset: UInt64, stamps: JournalStamps) {
        self.source = source
        self.line = line
        self.offset = offset
        self.token = .stamps(stamps)
    }

    /// Becomes `other`. When both name the same source and neither has a cursor (the next line
    /// of a file), only the numbers are written: the source is not retained and released again.
    package mutating func update(to other: SourcePosition) {
        guard token == nil, other.token == nil, source == other.source else {
            self = other
            return
        }
        line = other.line
        offset = other.offset
    }

    package static func == (a: Self, b: Self) -> Bool {
        a.source == b.source && a.line == b.line && a.offset == b.offset && a.cursor == b.cursor
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(source)
        hasher.combine(line)
        hasher.combine(offset)
        hasher.combine(cursor)
    }

    /// A compact, stable rendering used in finding uids and evidence.
    package var description: String {
        if let cursor { return "\(source)@\(cursor)" }
        return "\(source):\(line)"
    }
}

/// A boot id, one object shared by the stamps of every entry of the boot (a position stays
/// small: a reference instead of the id's 16 bytes).
package final class BootID: Sendable {
    /// The id's 16 bytes, in order, as two words.
    package let bytes: (UInt64, UInt64)

    package init(_ bytes: (UInt64, UInt64)) { self.bytes = bytes }
}

/// A journal entry's boot id, monotonic and realtime stamps, from which `cursor` writes
/// `b=<boot id>;m=<monotonic>;t=<realtime>` (hex, as sd-journal writes cursors; it accepts this
/// short form): the entry's identity, kept as numbers until a cursor is needed.
package struct JournalStamps: Sendable {
    /// The entry's boot; nil when the entry had no monotonic stamp.
    package var boot: BootID?
    package var monotonic: UInt64
    package var realtime: UInt64?

    package init(boot: BootID?, monotonic: UInt64, realtime: UInt64?) {
        self.boot = boot
        self.monotonic = monotonic
        self.realtime = realtime
    }

    package var cursor: String {
        String(unsafeUninitializedCapacity: 96) { out in
            var n = 0
            if let boot {
                n = Self.put("b=", into: out, at: n)
                withUnsafeBytes(of: boot.bytes) { id in
                    for b in id {
                        out[n] = Self.hexDigit(b >> 4)
                        out[n + 1] = Self.hexDigit(b & 15)
                        n += 2
                    }
                }
                n = Self.put(";m=", into: out, at: n)
                n = Self.hex(monotonic, into: out, at: n)
            }
            if let realtime {
                n = Self.put(n > 0 ? ";t=" : "t=", into: out, at: n)
                n = Self.hex(realtime, into: out, at: n)
            }
            return n
        }
    }

    private static func put(_ text: StaticString, into out: UnsafeMutableBufferPointer<UInt8>, at start: Int) -> Int {
        let bytes = UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
        for (i, b) in bytes.enumerated() { out[start + i] = b }
        return start + bytes.count
    }

    private static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 48 + v : 87 + v }

    /// `v` in lowercase hex without leading zeros at `start`; the index after it.
    private static func hex(_ v: UInt64, into out: UnsafeMutableBufferPointer<UInt8>, at start: Int) -> Int {
        let digits = max(1, (64 - v.leadingZeroBitCount + 3) / 4)
        var rest = v
        var n = start + digits
        while n > start {
            n -= 1
            out[n] = hexDigit(UInt8(truncatingIfNeeded: rest & 15))
            rest >>= 4
        }
        return start + digits
    }
}

extension [String: SourcePosition] {
    /// Holds `p` for its source unless an earlier position is held (files order by offset;
    /// journal entries, offset 0, by the order they were read).
    package mutating func keepEarliest(_ p: SourcePosition) {
        if let known = self[p.source], (known.offset, known.line) <= (p.offset, p.line) { return }
        self[p.source] = p
    }
}

/// An event's fields: names in order of appearance, values as byte ranges of one buffer.
/// A name may repeat (journald allows it); matchers treat repeats as a multi-valued field.
package struct EventFields: Sendable {
    /// One field: its name and where its value lies in `storage`. Name and range side by side,
    /// so a lookup reads one array and a reader appends once per field.
    package struct Field: Sendable {
        package var name: String
        package var range: Range<Int>
        package init(name: String, range: Range<Int>) {
            self.name = name
            self.range = range
        }
    }

    package private(set) var storage: [UInt8]
    private var fields: [Field]

    package init(capacity: Int = 0, fields count: Int = 0) {
        storage = []
        fields = []
        // reserveCapacity(0) would still allocate: an empty placeholder costs nothing.
        if capacity > 0 { storage.reserveCapacity(capacity) }
        if count > 0 { fields.reserveCapacity(count) }
    }

    /// Adopts `bytes` as the backing buffer; fields can then be added as ranges into it.
    package init(backing bytes: [UInt8]) {
        storage = bytes
        fields = []
        fields.reserveCapacity(12)
    }

    package var count: Int { fields.count }

    /// The names in order (repeats included).
    package var names: [String] { fields.map(\.name) }

    /// Starts over with `bytes` as the backing buffer and no fields. The field list and the
    /// buffer are kept when nothing else holds them (a copy of the event that became evidence
    /// keeps its own), so a reader that reuses one event per line does not allocate them for
    /// most lines. The buffer's capacity is kept only while it is at most twice the line's: a
    /// held buffer (evidence holds its event's) then never has more than twice the room its
    /// line needs, where one kept regardless would bring the capacity of the longest line
    /// before it (peak memory of a 1,000,000-line scan: 35.5 MB with a buffer sized to each
    /// line, 52.2 MB with one kept regardless).
    package mutating func reset(backing bytes: UnsafeBufferPointer<UInt8>) {
        let capacity = storage.capacity
        if capacity >= bytes.count, capacity <= 2 * max(bytes.count, 64) {
            // Shared, the buffer is not written: a new one of this capacity is made.
            storage.removeAll(keepingCapacity: true)
            storage.append(contentsOf: bytes)
        } else {
            storage = Array(bytes)
        }
        fields.removeAll(keepingCapacity: true)
        if fields.capacity == 0 { fields.reserveCapacity(12) }
    }

    /// Empties the fields; the buffers are kept when nothing else shares them (a reader reuses
    /// one set per entry).
    package mutating func removeAll() {
        storage.removeAll(keepingCapacity: true)
        fields.removeAll(keepingCapacity: true)
    }

    package var isEmpty: Bool { fields.isEmpty }

    /// Adds a field whose value is a range of the backing buffer (no copy).
    package mutating func add(_ name: String, range: Range<Int>) {
        fields.append(Field(name: name, range: range))
    }

    /// Takes `list` as the fields, whose ranges point into the backing buffer, and hands the
    /// previous list back (a reader fills one list per entry and reuses the other).
    package mutating func exchangeFields(_ list: inout [Field]) {
        swap(&fields, &list)
    }

    /// Appends `bytes` to the backing buffer without adding a field (fields added by range may
    /// point into it).
    package mutating func append(backing bytes: UnsafeRawBufferPointer) {
        storage.append(contentsOf: bytes.assumingMemoryBound(to: UInt8.self))
    }

    /// Adds a field with its own value, appended to the backing buffer.
    package mutating func add(_ name: String, bytes: some Collection<UInt8>) {
        let start = storage.count
        storage.append(contentsOf: bytes)
        fields.append(Field(name: name, range: start..<storage.count))
    }

    /// Adds a field whose value is copied from `bytes` (not generic: the per-field path of readers).
    package mutating func add(_ name: String, buffer bytes: UnsafeRawBufferPointer) {
        let start = storage.count
        // As typed bytes: Array copies an UnsafeBufferPointer with memcpy, a raw buffer byte by byte.
        storage.append(contentsOf: bytes.assumingMemoryBound(to: UInt8.self))
        fields.append(Field(name: name, range: start..<storage.count))
    }

    /// Adds a field whose value `write` appends to the backing buffer (a value decoded in place).
    @inline(__always)
    package mutating func add(_ name: String, writing write: (inout [UInt8]) -> Void) {
        let start = storage.count
        write(&storage)
        fields.append(Field(name: name, range: start..<storage.count))
    }

    /// Appends every field of `other`, in order.
    package mutating func append(contentsOf other: EventFields) {
        let shift = storage.count
        storage.append(contentsOf: other.storage)
        for f in other.fields {
            fields.append(Field(name: f.name, range: (f.range.lowerBound + shift)..<(f.range.upperBound + shift)))
        }
    }

    package mutating func add(_ name: String, _ value: String) {
        var value = value
        value.withUTF8 { add(name, bytes: $0) }
    }

    /// Replaces every value of `name` with `value`, or adds it.
    package mutating func set(_ name: String, _ value: String) {
        remove(name)
        add(name, value)
    }

    package mutating func remove(_ name: String) {
        fields.removeAll { $0.name == name }
    }

    package func contains(_ name: String) -> Bool { index(of: name) != nil }

    /// Index of the first field called `name`. Lookups compare lengths first: most names differ
    /// in length, and that skips the general string comparison on the per-event path.
    @inline(__always)
    package func index(of name: String) -> Int? {
        let n = name.utf8.count
        for i in fields.indices where fields[i].name.utf8.count == n && fields[i].name == name { return i }
        return nil
    }

    package func name(at index: Int) -> String { fields[index].name }
    package func range(at index: Int) -> Range<Int> { fields[index].range }
    package func value(at index: Int) -> ArraySlice<UInt8> { storage[fields[index].range] }

    /// The first value of `name`.
    package func first(_ name: String) -> ArraySlice<UInt8>? { index(of: name).map { storage[fields[$0].range] } }

    /// Calls `body` with the first value of `name` where it lies, if there is one (not generic:
    /// for the per-event path, where taking the value as a slice with `first` retains and
    /// releases the event's buffer). Returns whether there was one.
    @discardableResult
    package func withFirst(_ name: String, _ body: (UnsafeBufferPointer<UInt8>) -> Void) -> Bool {
        guard let i = index(of: name) else { return false }
        let range = fields[i].range
        storage.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[range])) }
        return true
    }

    /// Sets `ranges[k]` to the first value of `names.names[k]`, nil where absent. False when one
    /// of the names occurs twice (a caller that keys on first values must then look at each value).
    package func firstRanges(of names: FieldNameSet, into ranges: inout [Range<Int>?]) -> Bool {
        ranges.withUnsafeMutableBufferPointer { firstRanges(of: names, into: $0) }
    }

    /// `firstRanges(of:into:)` into scratch that the caller holds (such as stack memory).
    @discardableResult
    package func firstRanges(of names: FieldNameSet, into ranges: UnsafeMutableBufferPointer<Range<Int>?>) -> Bool {
        for k in ranges.indices { ranges[k] = nil }
        var single = true
        names.withTables { wanted, start, order in
            fields.withUnsafeBufferPointer { fields in
                for f in fields.indices {
                    // Only the names of this field's length (for most fields, none).
                    let n = fields[f].name.utf8.count
                    guard n + 1 < start.count else { continue }
                    for j in Int(start[n])..<Int(start[n + 1]) {
                        let k = Int(order[j])
                        guard fields[f].name == wanted[k] else { continue }
                        if ranges[k] == nil { ranges[k] = fields[f].range } else { single = false }
                        break
                    }
                }
            }
        }
        return single
    }

    /// Calls `body` with each field's name and value, in order, until it returns false.
    package func forEach(_ body: (String, UnsafeBufferPointer<UInt8>) -> Bool) {
        storage.withUnsafeBufferPointer { buffer in
            for f in fields where !body(f.name, UnsafeBufferPointer(rebasing: buffer[f.range])) { return }
        }
    }

    /// Every value of `name`, in order.
    package func all(_ name: String) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        for f in fields where f.name == name { out.append(storage[f.range]) }
        return out
    }

    /// Calls `body` with each value of `name` as a buffer; stops when `body` returns true.
    @inline(__always)
    package func anyValue(_ name: String, _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
        let n = name.utf8.count
        return storage.withUnsafeBufferPointer { buffer in
            for f in fields where f.name.utf8.count == n && f.name == name {
                if body(UnsafeBufferPointer(rebasing: buffer[f.range])) { return true }
            }
            return false
        }
    }
}

/// Field names looked up together, indexed by their length: a field is compared only with the
/// names of its length (most fields of an event match none, and most lengths have one name).
package struct FieldNameSet: Sendable {
    package let names: [String]
    /// The indices in `names` of the names of length `n` are `order[start[n] ..< start[n + 1]]`.
    private let start: [Int32]
    private let order: [Int32]

    package init(_ names: [String]) {
        let names = names.map(FieldName.canonical)
        self.names = names
        let lengths = names.map(\.utf8.count)
        let longest = lengths.max() ?? 0
        var start = [Int32](repeating: 0, count: longest + 2)
        var order: [Int32] = []
        for n in 0...longest {
            start[n] = Int32(order.count)
            for k in names.indices where lengths[k] == n { order.append(Int32(k)) }
        }
        start[longest + 1] = Int32(order.count)
        self.start = start
        self.order = order
    }

    /// Calls `body` with the names, `start` and `order` where they lie.
    @inline(__always)
    func withTables<R>(_ body: (UnsafeBufferPointer<String>, UnsafeBufferPointer<Int32>, UnsafeBufferPointer<Int32>) -> R) -> R {
        names.withUnsafeBufferPointer { names in
            start.withUnsafeBufferPointer { start in order.withUnsafeBufferPointer { body(names, start, $0) } }
        }
    }
}
