import EventModel

/// Parses syslog lines as files and peers really produce them: RFC 5424, and RFC 3164 with or
/// without `<PRI>`, with BSD or ISO 8601 stamps, with or without a hostname, `tag[pid]:`.
///
/// The parser never fails: a line without a recognisable header becomes an event whose
/// `MESSAGE` is the whole line, and `headerFound` says so.
package struct SyslogParser: Sendable {
    /// Year for stamps that carry none; nil infers it from `referenceTime`.
    package var year: Int? {
        didSet { lastStamp = nil }
    }
    /// Microseconds since the epoch near which undated stamps are placed (file mtime, or now).
    package var referenceTime: Int64 {
        didSet {
            reference = Self.civilDate(referenceTime)
            lastStamp = nil
        }
    }
    /// The last BSD stamp read without a fraction: its first 15 bytes as two overlapping words,
    /// its time and its length. Most lines repeat the stamp of the line before (several lines
    /// per second), and then it is not read again.
    private var lastStamp: (head: UInt64, tail: UInt64, micros: Int64, length: Int)?
    /// `referenceTime` as a calendar date, computed once rather than per line.
    private var reference: (year: Int, month: Int, day: Int)
    private var zone: LocalTimeZone

    package init(year: Int? = nil, referenceTime: Int64, zone: LocalTimeZone = LocalTimeZone()) {
        self.year = year
        self.referenceTime = referenceTime
        self.reference = Self.civilDate(referenceTime)
        self.zone = zone
    }

    private static func civilDate(_ micros: Int64) -> (year: Int, month: Int, day: Int) {
        let c = CivilTime.civil(micros: micros)
        return (c.year, c.month, c.day)
    }

    package struct Result {
        package var event: Event
        package var headerFound: Bool
    }

    package mutating func parse(_ line: UnsafeBufferPointer<UInt8>, position: SourcePosition) -> Result {
        var event = Event(position: position)
        var position = position
        let found = parse(line, position: &position, into: &event)
        return Result(event: event, headerFound: found)
    }

    /// Parses `line` into `event`, replacing all it held and reusing its field list where it can
    /// (see `EventFields.reset(backing:)`). Returns whether the line had a header. `position` is
    /// only read (in-out for the reason `LineDecoder.decode(_:position:into:)` gives).
    package mutating func parse(_ line: UnsafeBufferPointer<UInt8>, position: inout SourcePosition, into event: inout Event) -> Bool {
        // The fields are moved out and back, not copied: their buffers stay unshared.
        var fields = EventFields()
        swap(&fields, &event.fields)
        fields.reset(backing: line)
        event.time = nil
        event.position.update(to: position)
        event.repeatCount = 1
        let found = parseHeader(line, into: &fields, event: &event)
        swap(&fields, &event.fields)
        return found
    }

    private mutating func parseHeader(_ b: UnsafeBufferPointer<UInt8>, into fields: inout EventFields, event: inout Event) -> Bool {
        let n = b.count
        var i = 0
        var pri: Int?
        if n > 2, b[0] == UInt8(ascii: "<") {
            var j = 1
            var v = 0
            while j < n, j <= 4, b[j].isDigit {
                v = v * 10 + Int(b[j] - 48)
                j += 1
            }
            if j > 1, j < n, b[j] == UInt8(ascii: ">"), v <= 191 {
                pri = v
                i = j + 1
            }
        }
        if let pri {
            fields.add(FieldName.priority, bytes: Array(String(pri & 7).utf8))
            fields.add(FieldName.facility, bytes: Array(String(pri >> 3).utf8))
            if i + 1 < n, b[i].isDigit, b[i + 1] == UInt8(ascii: " ") {
                return parse5424(b, from: i + 2, into: &fields, event: &event)
            }
        }
        return parse3164(b, from: i, hadPRI: pri != nil, into: &fields, event: &event)
    }

    // MARK: RFC 3164

    private mutating func parse3164(
        _ b: UnsafeBufferPointer<UInt8>, from start: Int, hadPRI: Bool, into fields: inout EventFields, event: inout Event
    ) -> Bool {
        let n = b.count
        var i = start
        var stamped = false
        if let (t, end) = bsdTimestamp(b, i) {
            event.time = t
            fields.add(FieldName.syslogTimestamp, range: i..<end)
            i = end
            stamped = true
        } else if let (t, end) = Self.isoTimestamp(b, i) {
            event.time = t
            fields.add(FieldName.syslogTimestamp, range: i..<end)
            i = end
            stamped = true
        }
        i = skipSpaces(b, i)
        var tokenEnd = tokenEnd(b, i)
        var host: Range<Int>?
        if !isTag(b, i, tokenEnd), tokenEnd > i {
            let nextStart = skipSpaces(b, tokenEnd)
            let nextEnd = self.tokenEnd(b, nextStart)
            // Without a stamp or PRI, a first word counts as a hostname only if a tag follows it.
            if stamped || hadPRI || isTag(b, nextStart, nextEnd) {
                host = i..<tokenEnd
                i = nextStart
                tokenEnd = nextEnd
            }
        }
        var tagged = false
        if isTag(b, i, tokenEnd) {
            tagged = true
            addTag(b, i, tokenEnd, into: &fields)
            i = tokenEnd
            if i < n, b[i] == UInt8(ascii: " ") { i += 1 }
        }
        if let host { fields.add(FieldName.hostname, range: host) }
        if !(stamped || hadPRI || tagged) {
            fields.add(FieldName.message, range: 0..<n)
            return false
        }
        addMessage(b, from: i, into: &fields, event: &event)
        return true
    }

    /// `Mmm dd hh:mm:ss` (day space-padded), optionally with fractional seconds.
    private mutating func bsdTimestamp(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> (Int64, Int)? {
        guard i + 15 <= b.count, let base = b.baseAddress else { return nil }
        let head = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
        let tail = UnsafeRawPointer(base + i + 7).loadUnaligned(as: UInt64.self)
        // The same 15 bytes give the same stamp, unless the 15th ended it and a fraction follows.
        if let last = lastStamp, last.head == head, last.tail == tail,
            last.length < 15 || i + 15 == b.count || b[i + 15] != UInt8(ascii: ".")
        {
            return (last.micros, i + last.length)
        }
        guard let month = Self.month(b[i], b[i + 1], b[i + 2]), b[i + 3] == 32 else { return nil }
        var j = i + 4
        if b[j] == 32 { j += 1 }
        var day = 0
        var digits = 0
        while j < b.count, b[j].isDigit, digits < 2 {
            day = day * 10 + Int(b[j] - 48)
            j += 1
            digits += 1
        }
        guard digits > 0, day >= 1, day <= 31, j + 9 <= b.count, b[j] == 32 else { return nil }
        j += 1
        guard let (h, m, s) = Self.clock(b, j) else { return nil }
        j += 8
        var micro = 0
        var fraction = false
        if j < b.count, b[j] == UInt8(ascii: ".") {
            (micro, j) = Self.fraction(b, j + 1)
            fraction = true
        }
        let local = CivilTime.micros(
            year: inferYear(month: month, day: day), month: month, day: day, hour: h, minute: m, second: s, micro: micro)
        let micros = zone.utcMicros(localMicros: local)
        lastStamp = !fraction && j - i <= 15 ? (head, tail, micros, j - i) : nil
        return (micros, j)
    }

    private func inferYear(month: Int, day: Int) -> Int {
        if let year { return year }
        let ref = reference
        // A stamp more than a month after the reference belongs to the previous year (logs span New Year).
        if month > ref.month + 1 || (month == ref.month + 1 && day > ref.day) { return ref.year - 1 }
        return ref.year
    }

    private func addMessage(_ b: UnsafeBufferPointer<UInt8>, from start: Int, into fields: inout EventFields, event: inout Event) {
        let n = b.count
        // rsyslog's reduction: "message repeated N times: [ original]"
        let marker = Self.repeatedMarker
        if n - start > marker.count + 6, Self.hasPrefix(b, start, marker) {
            var j = start + marker.count
            var count = 0
            while j < n, b[j].isDigit, count < 1_000_000 {
                count = count * 10 + Int(b[j] - 48)
                j += 1
            }
            let tail = Self.repeatedTail
            if count > 0, Self.hasPrefix(b, j, tail), b[n - 1] == UInt8(ascii: "]") {
                var s = j + tail.count
                if s < n, b[s] == 32 { s += 1 }
                fields.add(FieldName.message, range: s..<max(s, n - 1))
                event.repeatCount = count
                return
            }
        }
        fields.add(FieldName.message, range: start..<n)
    }

    private static let repeatedMarker = Array("message repeated ".utf8)
    private static let repeatedTail = Array(" times: [".utf8)

    private func skipSpaces(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int {
        var i = i
        while i < b.count, b[i] == 32 { i += 1 }
        return i
    }

    private func tokenEnd(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int {
        var j = i
        while j < b.count, b[j] != 32 { j += 1 }
        return j
    }

    /// `ident:`, `ident[pid]:`, `ident[pid]` or `[ident]:`.
    private func isTag(_ b: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int) -> Bool {
        guard e > s, e - s <= 128 else { return false }
        if b[e - 1] == UInt8(ascii: ":") { return e - s > 1 }
        if b[s] == UInt8(ascii: "["), b[e - 1] == UInt8(ascii: "]"), e - s > 2 { return true }
        if b[e - 1] == UInt8(ascii: "]") {
            var j = e - 2
            while j > s, b[j].isDigit { j -= 1 }
            return j > s && j < e - 2 && b[j] == UInt8(ascii: "[")
        }
        return false
    }

    private func addTag(_ b: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int, into fields: inout EventFields) {
        var end = e
        if b[end - 1] == UInt8(ascii: ":") { end -= 1 }
        if b[s] == UInt8(ascii: "["), end - s > 2, b[end - 1] == UInt8(ascii: "]") {
            fields.add(FieldName.identifier, range: (s + 1)..<(end - 1))
            return
        }
        if end > s, b[end - 1] == UInt8(ascii: "]") {
            var j = end - 2
            while j > s, b[j].isDigit { j -= 1 }
            if b[j] == UInt8(ascii: "["), j < end - 2 {
                if j > s { fields.add(FieldName.identifier, range: s..<j) }
                fields.add(FieldName.pid, range: (j + 1)..<(end - 1))
                return
            }
        }
        if end > s { fields.add(FieldName.identifier, range: s..<end) }
    }

    // MARK: RFC 5424

    private mutating func parse5424(
        _ b: UnsafeBufferPointer<UInt8>, from start: Int, into fields: inout EventFields, event: inout Event
    ) -> Bool {
        let n = b.count
        var i = start
        func field(_ name: String?) {
            let s = i
            while i < n, b[i] != 32 { i += 1 }
            if let name, i > s, !(i - s == 1 && b[s] == UInt8(ascii: "-")) {
                fields.add(name, range: s..<i)
            }
            if i < n { i += 1 }
        }
        let tsStart = i
        if let (t, end) = Self.isoTimestamp(b, i) {
            event.time = t
            fields.add(FieldName.syslogTimestamp, range: tsStart..<end)
            i = end
            while i < n, b[i] != 32 { i += 1 }
            if i < n { i += 1 }
        } else {
            field(nil)
        }
        field(FieldName.hostname)
        field(FieldName.identifier)
        field(FieldName.pid)
        field(FieldName.msgid)
        // Structured data: "-" or one or more [id param="value" ...].
        if i < n, b[i] == UInt8(ascii: "-") {
            i += 1
        } else if i < n, b[i] == UInt8(ascii: "[") {
            let sdStart = i
            while i < n, b[i] == UInt8(ascii: "[") {
                guard let end = parseSDElement(b, i, into: &fields) else { break }
                i = end
            }
            fields.add(FieldName.structuredData, range: sdStart..<i)
        }
        if i < n, b[i] == 32 { i += 1 }
        if i + 3 <= n, b[i] == 0xEF, b[i + 1] == 0xBB, b[i + 2] == 0xBF { i += 3 }
        // rsyslog relaying an RFC 3164 message as RFC 5424 keeps the space after its tag.
        if i < n, b[i] == 32 { i += 1 }
        addMessage(b, from: min(i, n), into: &fields, event: &event)
        return true
    }

    /// One `[SD-ID param="value" ...]`; each param becomes the field `SD-ID.param`.
    private func parseSDElement(_ b: UnsafeBufferPointer<UInt8>, _ s: Int, into fields: inout EventFields) -> Int? {
        let n = b.count
        var i = s + 1
        let idStart = i
        while i < n, b[i] != 32, b[i] != UInt8(ascii: "]") { i += 1 }
        let id = String(decoding: UnsafeBufferPointer(rebasing: b[idStart..<i]), as: UTF8.self)
        while i < n {
            if b[i] == UInt8(ascii: "]") { return i + 1 }
            if b[i] == 32 { i += 1; continue }
            let nameStart = i
            while i < n, b[i] != UInt8(ascii: "="), b[i] != UInt8(ascii: "]"), b[i] != 32 { i += 1 }
            guard i + 1 < n, b[i] == UInt8(ascii: "="), b[i + 1] == UInt8(ascii: "\"") else { return nil }
            let name = String(decoding: UnsafeBufferPointer(rebasing: b[nameStart..<i]), as: UTF8.self)
            i += 2
            var value: [UInt8] = []
            while i < n, b[i] != UInt8(ascii: "\"") {
                if b[i] == UInt8(ascii: "\\"), i + 1 < n,
                    b[i + 1] == UInt8(ascii: "\"") || b[i + 1] == UInt8(ascii: "\\") || b[i + 1] == UInt8(ascii: "]")
                {
                    i += 1
                }
                value.append(b[i])
                i += 1
            }
            guard i < n else { return nil }
            i += 1
            fields.add("\(id).\(name)", bytes: value)
        }
        return nil
    }

    // MARK: Shared pieces

    private static func month(_ a: UInt8, _ b: UInt8, _ c: UInt8) -> Int? {
        switch (a | 0x20, b | 0x20, c | 0x20) {
        case (0x6A, 0x61, 0x6E): 1  // jan
        case (0x66, 0x65, 0x62): 2  // feb
        case (0x6D, 0x61, 0x72): 3  // mar
        case (0x61, 0x70, 0x72): 4  // apr
        case (0x6D, 0x61, 0x79): 5  // may
        case (0x6A, 0x75, 0x6E): 6  // jun
        case (0x6A, 0x75, 0x6C): 7  // jul
        case (0x61, 0x75, 0x67): 8  // aug
        case (0x73, 0x65, 0x70): 9  // sep
        case (0x6F, 0x63, 0x74): 10  // oct
        case (0x6E, 0x6F, 0x76): 11  // nov
        case (0x64, 0x65, 0x63): 12  // dec
        default: nil
        }
    }

    private static func clock(_ b: UnsafeBufferPointer<UInt8>, _ j: Int) -> (Int, Int, Int)? {
        guard j + 8 <= b.count, b[j].isDigit, b[j + 1].isDigit, b[j + 2] == 58, b[j + 3].isDigit, b[j + 4].isDigit,
            b[j + 5] == 58, b[j + 6].isDigit, b[j + 7].isDigit
        else { return nil }
        let h = Int(b[j] - 48) * 10 + Int(b[j + 1] - 48)
        let m = Int(b[j + 3] - 48) * 10 + Int(b[j + 4] - 48)
        let s = Int(b[j + 6] - 48) * 10 + Int(b[j + 7] - 48)
        guard h < 24, m < 60, s <= 60 else { return nil }
        return (h, m, min(s, 59))
    }

    private static func fraction(_ b: UnsafeBufferPointer<UInt8>, _ from: Int) -> (Int, Int) {
        var j = from
        var micro = 0
        var digits = 0
        while j < b.count, b[j].isDigit {
            if digits < 6 {
                micro = micro * 10 + Int(b[j] - 48)
                digits += 1
            }
            j += 1
        }
        while digits < 6 {
            micro *= 10
            digits += 1
        }
        return (micro, j)
    }

    /// `YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm)`; a stamp without a zone is taken as UTC.
    package static func isoTimestamp(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> (Int64, Int)? {
        guard i + 19 <= b.count else { return nil }
        func num(_ s: Int, _ len: Int) -> Int? {
            var v = 0
            for k in s..<(s + len) {
                guard b[k].isDigit else { return nil }
                v = v * 10 + Int(b[k] - 48)
            }
            return v
        }
        guard let y = num(i, 4), b[i + 4] == UInt8(ascii: "-"), let mo = num(i + 5, 2), b[i + 7] == UInt8(ascii: "-"),
            let d = num(i + 8, 2), b[i + 10] == UInt8(ascii: "T") || b[i + 10] == 32, let (h, m, s) = clock(b, i + 11),
            (1...12).contains(mo), (1...31).contains(d)
        else { return nil }
        var j = i + 19
        var micro = 0
        if j < b.count, b[j] == UInt8(ascii: ".") || b[j] == UInt8(ascii: ",") {
            (micro, j) = fraction(b, j + 1)
        }
        var t = CivilTime.micros(year: y, month: mo, day: d, hour: h, minute: m, second: s, micro: micro)
        if j < b.count, b[j] == UInt8(ascii: "Z") || b[j] == UInt8(ascii: "z") {
            j += 1
        } else if j + 5 <= b.count, b[j] == UInt8(ascii: "+") || b[j] == UInt8(ascii: "-"), let oh = num(j + 1, 2) {
            // ±hh:mm, or ±hhmm as some syslog daemons write it.
            var om: Int?
            var width = 0
            if j + 6 <= b.count, b[j + 3] == 58 {
                om = num(j + 4, 2)
                width = 6
            } else {
                om = num(j + 3, 2)
                width = 5
            }
            if let om {
                let offset = Int64(oh * 3600 + om * 60) * 1_000_000
                t += b[j] == UInt8(ascii: "+") ? -offset : offset
                j += width
            }
        }
        return (t, j)
    }

    private static func hasPrefix(_ b: UnsafeBufferPointer<UInt8>, _ at: Int, _ p: [UInt8]) -> Bool {
        guard at + p.count <= b.count else { return false }
        for k in 0..<p.count where b[at + k] != p[k] { return false }
        return true
    }
}

extension UInt8 {
    @inline(__always) package var isDigit: Bool { self &- 48 < 10 }
}
