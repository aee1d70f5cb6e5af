/// An event packed into one byte buffer: one allocation instead of four, for events that are
/// kept a long time in large numbers (correlation evidence).
package struct PackedEvent: Sendable {
    package private(set) var bytes: [UInt8]

    package init(bytes: [UInt8]) { self.bytes = bytes }

    package init(_ event: Event) { bytes = Self.pack(event) }

    /// `event` packed: written through a pointer into room for the most it can need (no
    /// per-byte append), then copied at its size.
    package static func pack(_ event: Event) -> [UInt8] {
        let source = event.position.source
        let cursor = event.position.cursor
        // At most 10 bytes per varint: eight in the header, a code and two per field.
        var bound = 8 * 10 + source.utf8.count + (cursor?.utf8.count ?? 0)
        event.fields.forEach { name, value in
            bound += 1 + 2 * 10 + name.utf8.count + value.count
            return true
        }
        return [UInt8](writingAtMost: bound) { base in
            var w = PackWriter(at: base)
            w.varint(event.time.map { UInt64(bitPattern: $0) &+ 1 } ?? 0)
            w.bytes(source)
            w.varint(UInt64(max(0, event.position.line)))
            w.varint(event.position.offset)
            // Bit 0: a cursor follows; the bits above it are the event's marks.
            w.varint(UInt64(event.marks) << 1 | (cursor == nil ? 0 : 1))
            if let cursor { w.bytes(cursor) }
            w.varint(UInt64(max(0, event.repeatCount)))
            w.varint(UInt64(event.fields.count))
            event.fields.forEach { name, value in
                // A common name is one byte (its index + 1); others are 0 and then the name.
                if let code = Self.code(name) {
                    w.byte(code)
                } else {
                    w.byte(0)
                    w.bytes(name)
                }
                w.bytes(value)
                return true
            }
            return w.count
        }
    }

    /// Writes packed fields through a pointer into room the caller has made.
    private struct PackWriter {
        let base: UnsafeMutablePointer<UInt8>
        var count = 0

        init(at base: UnsafeMutablePointer<UInt8>) { self.base = base }

        mutating func byte(_ b: UInt8) {
            base[count] = b
            count += 1
        }

        mutating func varint(_ v: UInt64) {
            var v = v
            while v >= 0x80 {
                byte(UInt8(truncatingIfNeeded: v) | 0x80)
                v >>= 7
            }
            byte(UInt8(v))
        }

        mutating func bytes(_ b: UnsafeBufferPointer<UInt8>) {
            varint(UInt64(b.count))
            if let from = b.baseAddress { (base + count).update(from: from, count: b.count) }
            count += b.count
        }

        mutating func bytes(_ s: String) {
            var s = s
            s.withUTF8 { bytes($0) }
        }
    }

    /// Field names most events carry, stored as one byte each (evidence kept in large numbers).
    static let commonNames: [String] = [
        FieldName.message, FieldName.identifier, FieldName.pid, FieldName.hostname, FieldName.priority, FieldName.facility,
        FieldName.comm, FieldName.syslogTimestamp, FieldName.msgid, FieldName.structuredData, FieldName.transport,
        FieldName.systemdUnit, FieldName.realtimeTimestamp, FieldName.sourceRealtimeTimestamp, "source.address", "user.name",
        "source.port", "_UID", "_GID", "_BOOT_ID", "_MACHINE_ID", "_EXE", "_CMDLINE", "SYSLOG_PID", "_SOURCE_MONOTONIC_TIMESTAMP",
        "_SYSTEMD_CGROUP", "_SYSTEMD_SLICE", "_SYSTEMD_INVOCATION_ID", "_CAP_EFFECTIVE", "_AUDIT_SESSION", "_AUDIT_LOGINUID",
        "_SELINUX_CONTEXT", "_STREAM_ID", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
    ]

    /// The common names by length, with their codes: a name is compared only with the few of its
    /// length (cheaper than hashing it, once per field of every packed event).
    static let codesByLength: [[(name: String, code: UInt8)]] = {
        var table = [[(name: String, code: UInt8)]](repeating: [], count: (commonNames.map(\.utf8.count).max() ?? 0) + 1)
        for (i, name) in commonNames.enumerated() { table[name.utf8.count].append((name, UInt8(i + 1))) }
        return table
    }()

    static func code(_ name: String) -> UInt8? {
        let n = name.utf8.count
        guard n < codesByLength.count else { return nil }
        for candidate in codesByLength[n] where candidate.name == name { return candidate.code }
        return nil
    }

    /// The event again.
    package func unpacked() -> Event {
        var source: String? = nil
        return Self.unpack(bytes[...], source: &source)
    }

    /// The event packed in `bytes`. `source` is the source path of the event unpacked before it,
    /// if any: reused when it is the same (a list's events mostly share one), else replaced.
    static func unpack(_ bytes: ArraySlice<UInt8>, source known: inout String?) -> Event {
        bytes.withUnsafeBufferPointer { unpack($0, source: &known) }
    }

    /// `unpack` from the bytes where they lie.
    static func unpack(_ bytes: UnsafeBufferPointer<UInt8>, source known: inout String?) -> Event {
        var i = 0
        func varint() -> UInt64 {
            var v: UInt64 = 0
            var shift: UInt64 = 0
            while i < bytes.count {
                let b = bytes[i]
                i += 1
                v |= UInt64(b & 0x7F) << shift
                if b < 0x80 { break }
                shift += 7
            }
            return v
        }
        func slice() -> UnsafeBufferPointer<UInt8> {
            let n = Int(varint())
            let s = UnsafeBufferPointer(rebasing: bytes[i..<min(bytes.count, i + n)])
            i += n
            return s
        }
        let rawTime = varint()
        let sourceBytes = slice()
        var same = false
        if var k = known {
            same = k.withUTF8 { k in
                guard k.count == sourceBytes.count else { return false }
                var j = 0
                while j < k.count, k[j] == sourceBytes[j] { j += 1 }
                return j == k.count
            }
        }
        if !same { known = String(decoding: sourceBytes, as: UTF8.self) }
        let source = known!
        let line = Int(varint())
        let offset = varint()
        let flags = varint()
        let cursor = flags & 1 == 1 ? String(decoding: slice(), as: UTF8.self) : nil
        let repeats = Int(varint())
        let count = Int(varint())
        var fields = EventFields(capacity: bytes.count, fields: min(count, 64))
        let common = Self.commonNames
        for _ in 0..<count {
            guard i < bytes.count else { break }
            let code = Int(bytes[i])
            i += 1
            let name = code == 0 ? String(decoding: slice(), as: UTF8.self) : code <= common.count ? common[code - 1] : "?"
            fields.add(name, buffer: UnsafeRawBufferPointer(slice()))
        }
        var event = Event(
            time: rawTime == 0 ? nil : Int64(bitPattern: rawTime &- 1),
            position: SourcePosition(source: source, line: line, offset: offset, cursor: cursor), repeatCount: repeats,
            fields: fields)
        event.marks = UInt32(truncatingIfNeeded: flags >> 1)
        return event
    }
}

/// The last few events of a group in one buffer: each packed event preceded by its length.
package struct PackedEventList: Sendable {
    private var buffer: [UInt8] = []
    private var count32: Int32 = 0
    package var count: Int {
        get { Int(count32) }
        set { count32 = Int32(newValue) }
    }

    package init() {}

    /// The list as stored (for snapshots), and back.
    package var storage: [UInt8] { buffer }

    package init(storage: [UInt8], count: Int) {
        buffer = storage
        self.count = count
    }

    /// Appends `event`, dropping the oldest so that at most `limit` remain (the buffer holds
    /// only live events: groups are many, and memory counts more than the move).
    package mutating func append(_ event: Event, keeping limit: Int) {
        append(packed: PackedEvent.pack(event), keeping: limit)
    }

    /// Appends an event packed by `PackedEvent.pack` (packed once for several lists).
    package mutating func append(packed: [UInt8], keeping limit: Int) {
        var n = UInt32(packed.count)
        for _ in 0..<4 {
            buffer.append(UInt8(truncatingIfNeeded: n))
            n >>= 8
        }
        buffer.append(contentsOf: packed)
        count += 1
        var dropped = 0
        while count > limit, limit >= 0 {
            dropped += 4 + length(at: dropped)
            count -= 1
        }
        if dropped > 0 { buffer.removeFirst(dropped) }
    }

    private func length(at i: Int) -> Int {
        Int(buffer[i]) | Int(buffer[i + 1]) << 8 | Int(buffer[i + 2]) << 16 | Int(buffer[i + 3]) << 24
    }

    /// The events, oldest first.
    package func events() -> [Event] {
        var out: [Event] = []
        out.reserveCapacity(count)
        var source: String? = nil
        var i = 0
        while i + 4 <= buffer.count {
            let n = length(at: i)
            out.append(PackedEvent.unpack(buffer[(i + 4)..<min(buffer.count, i + 4 + n)], source: &source))
            i += 4 + n
        }
        return out
    }
}
