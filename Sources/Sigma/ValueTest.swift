import EventModel

/// One compiled comparison of a field value against a rule value.
package enum ValueTest: Sendable {
    case string(StringMatcher)
    case regex(ByteRegex)
    case cidr(CIDRBlock)
    case compare(ComparisonOperator, Double)
    /// A YAML number: numeric equality when the field parses as a number, else text equality.
    case number(Double, StringMatcher)
    case fieldRef(String, StringMatcher.Kind, caseSensitive: Bool)
    case timePart(TimePart, Int)

    package enum ComparisonOperator: String, Sendable {
        case lt, lte, gt, gte
    }

    package enum TimePart: String, Sendable {
        case minute, hour, day, week, month, year
    }

    func matches(_ value: UnsafeBufferPointer<UInt8>, in fields: EventFields, stats: inout MatchStatistics) -> Bool {
        switch self {
        case .string(let m):
            return m.matches(value)
        case .regex(let r):
            switch r.search(value) {
            case .match: return true
            case .noMatch: return false
            case .budgetExceeded:
                stats.regexBudgetExceeded += 1
                return false
            }
        case .cidr(let block):
            guard let ip = IPAddress(bytes: value) else { return false }
            return block.contains(ip)
        case .compare(let op, let bound):
            guard let v = Self.parseNumber(value) else { return false }
            switch op {
            case .lt: return v < bound
            case .lte: return v <= bound
            case .gt: return v > bound
            case .gte: return v >= bound
            }
        case .number(let n, let text):
            if let v = Self.parseNumber(value) { return v == n }
            return text.matches(value)
        case .fieldRef(let other, let kind, let caseSensitive):
            return fields.anyValue(other) { ref in
                var parts: [SigmaPattern.Part] = [.literal(Array(ref))]
                switch kind {
                case .contains: parts = [.anyRun] + parts + [.anyRun]
                case .prefix: parts += [.anyRun]
                case .suffix: parts = [.anyRun] + parts
                default: break
                }
                return StringMatcher(SigmaPattern(parts: parts), caseSensitive: caseSensitive).matches(value)
            }
        case .timePart(let part, let want):
            guard let t = Self.parseTime(value) else { return false }
            let c = CivilTimeParts(micros: t)
            switch part {
            case .minute: return c.minute == want
            case .hour: return c.hour == want
            case .day: return c.day == want
            case .month: return c.month == want
            case .year: return c.year == want
            case .week: return c.isoWeek == want
            }
        }
    }

    static func parseNumber(_ v: UnsafeBufferPointer<UInt8>) -> Double? {
        guard !v.isEmpty, v.count < 64 else { return nil }
        var s = Substring(String(decoding: v, as: UTF8.self))
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        if s.hasPrefix("0x") || s.hasPrefix("0X"), let i = UInt64(s.dropFirst(2), radix: 16) { return Double(i) }
        return Double(s)
    }

    /// ISO 8601 text, or an integer of seconds, milliseconds or microseconds since the epoch.
    static func parseTime(_ v: UnsafeBufferPointer<UInt8>) -> Int64? {
        if v.count >= 19, let iso = isoTime(v) { return iso }
        guard let n = Int64(String(decoding: v, as: UTF8.self)) else { return nil }
        if n > 100_000_000_000_000 { return n }
        if n > 100_000_000_000 { return n * 1000 }
        return n * 1_000_000
    }

    private static func isoTime(_ v: UnsafeBufferPointer<UInt8>) -> Int64? {
        func num(_ s: Int, _ n: Int) -> Int? {
            var r = 0
            for k in s..<(s + n) {
                guard v[k] &- 48 < 10 else { return nil }
                r = r * 10 + Int(v[k] - 48)
            }
            return r
        }
        guard let y = num(0, 4), let mo = num(5, 2), let d = num(8, 2), let h = num(11, 2), let mi = num(14, 2),
            let s = num(17, 2)
        else { return nil }
        return CivilTime.micros(year: y, month: mo, day: d, hour: h, minute: mi, second: s)
    }
}

/// UTC calendar breakdown for the time-part modifiers.
struct CivilTimeParts {
    var year: Int, month: Int, day: Int, hour: Int, minute: Int
    var isoWeek: Int

    init(micros: Int64) {
        let c = CivilTime.civil(micros: micros)
        (year, month, day, hour, minute) = (c.year, c.month, c.day, c.hour, c.minute)
        // ISO 8601 week: the week holding the year's first Thursday is week 1.
        let days = CivilTime.daysFromCivil(year: year, month: month, day: day)
        let weekday = ((days % 7) + 7 + 3) % 7  // Monday = 0
        let thursday = days - weekday + 3
        let thursdayYear = CivilTime.civil(micros: Int64(thursday) * 86_400_000_000).year
        isoWeek = (thursday - CivilTime.daysFromCivil(year: thursdayYear, month: 1, day: 1)) / 7 + 1
    }
}

/// An IPv4 or IPv6 address as 16 bytes (IPv4 mapped into `::ffff:0:0/96`).
package struct IPAddress: Sendable, Hashable {
    package var bytes: [UInt8]

    package init?(_ text: String) {
        var t = text
        guard let a = t.withUTF8({ IPAddress(bytes: $0) }) else { return nil }
        self = a
    }

    package init?(bytes v: UnsafeBufferPointer<UInt8>) {
        guard !v.isEmpty, v.count <= 64 else { return nil }
        if let v4 = Self.parseV4(bytes: v) {
            bytes = [
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, UInt8(v4 >> 24), UInt8(v4 >> 16 & 0xFF), UInt8(v4 >> 8 & 0xFF), UInt8(v4 & 0xFF),
            ]
            return
        }
        var s = String(decoding: v, as: UTF8.self)
        if s.hasPrefix("["), s.hasSuffix("]") { s = String(s.dropFirst().dropLast()) }
        if let pct = s.firstIndex(of: "%") { s = String(s[..<pct]) }
        if let v4 = Self.parseV4(Substring(s)) {
            bytes = Array(repeating: 0, count: 10) + [0xFF, 0xFF] + v4
            return
        }
        guard let v6 = Self.parseV6(s) else { return nil }
        bytes = v6
    }

    /// Whether `v` parses as an address (the test of `init?(bytes:)`), without building one
    /// for the common dotted quad.
    package static func isAddress(_ v: UnsafeBufferPointer<UInt8>) -> Bool {
        parseV4(bytes: v) != nil || IPAddress(bytes: v) != nil
    }

    /// Dotted quad straight from bytes, as one number (first part in the high byte): the
    /// common case, without building a String or an array.
    static func parseV4(bytes v: UnsafeBufferPointer<UInt8>) -> UInt32? {
        var out: UInt32 = 0
        var parts = 0
        var value: UInt32 = 0
        var digits = 0
        for c in v {
            if c &- 48 < 10 {
                value = value * 10 + UInt32(c - 48)
                digits += 1
                guard digits <= 3, value <= 255 else { return nil }
            } else if c == UInt8(ascii: "."), digits > 0, parts < 3 {
                out = out << 8 | value
                parts += 1
                value = 0
                digits = 0
            } else {
                return nil
            }
        }
        guard digits > 0, parts == 3 else { return nil }
        return out << 8 | value
    }

    static func parseV4(_ s: Substring) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy(\.isASCII), let v = UInt8(p) else { return nil }
            out.append(v)
        }
        return out
    }

    static func parseV6(_ s: String) -> [UInt8]? {
        guard s.contains(":") else { return nil }
        let halves = s.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt8]? {
            if part.isEmpty { return [] }
            var out: [UInt8] = []
            let items = part.split(separator: ":", omittingEmptySubsequences: false)
            for (k, g) in items.enumerated() {
                if k == items.count - 1, g.contains("."), let v4 = parseV4(g) {
                    out += v4
                    continue
                }
                guard !g.isEmpty, g.count <= 4, let v = UInt16(g, radix: 16) else { return nil }
                out += [UInt8(v >> 8), UInt8(v & 0xFF)]
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 1 { return head.count == 16 ? head : nil }
        guard let tail = groups(halves[1]), head.count + tail.count <= 14 else { return nil }
        return head + Array(repeating: 0, count: 16 - head.count - tail.count) + tail
    }
}

/// A network in CIDR notation.
package struct CIDRBlock: Sendable, Hashable {
    let network: IPAddress
    let prefix: Int

    package init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let addr = parts.first, let ip = IPAddress(String(addr)) else { return nil }
        let isV4 = IPAddress.parseV4(addr) != nil
        var len = isV4 ? 32 : 128
        if parts.count == 2 {
            guard let p = Int(parts[1]), p >= 0, p <= len else { return nil }
            len = p
        }
        network = ip
        prefix = isV4 ? len + 96 : len
    }

    package func contains(_ ip: IPAddress) -> Bool {
        var bits = prefix
        var k = 0
        while bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if ip.bytes[k] & mask != network.bytes[k] & mask { return false }
            bits -= 8
            k += 1
        }
        return true
    }
}

/// Counters kept while matching, reported in the summary.
package struct MatchStatistics: Sendable, Equatable {
    package var regexBudgetExceeded = 0
    package var rulesEvaluated = 0
    /// Failures held until their session named an address.
    package var sessionDeferred = 0
    /// Session summary matches not reported because the session already reported a failure.
    package var sessionFolded = 0
    package init() {}
}
