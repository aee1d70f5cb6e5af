import EventModel

/// Parses one JSON object per line (`journalctl -o json` and similar) into event fields.
///
/// Keys become field names; nested objects flatten to dotted names; arrays of strings become
/// repeated fields; arrays of byte values (journald's encoding of binary data) become one value.
package struct JSONLineParser: Sendable {
    package init() {}

    package enum Failure: Error, Equatable {
        case notAnObject
        case malformed(offset: Int)
        case tooDeep
    }

    package func parse(_ line: UnsafeBufferPointer<UInt8>, position: SourcePosition) -> Result<Event, Failure> {
        var scanner = Scanner(bytes: line)
        var fields = EventFields(capacity: line.count)
        do {
            scanner.skipWhitespace()
            guard scanner.peek == UInt8(ascii: "{") else { return .failure(.notAnObject) }
            try scanner.object(prefix: "", depth: 0, into: &fields)
            scanner.skipWhitespace()
            guard scanner.atEnd else { throw Failure.malformed(offset: scanner.i) }
        } catch let failure as Failure {
            return .failure(failure)
        } catch {
            return .failure(.malformed(offset: scanner.i))
        }
        var event = Event(position: position, fields: fields)
        event.time = Self.eventTime(fields)
        return .success(event)
    }

    static func eventTime(_ fields: EventFields) -> Int64? {
        for name in [FieldName.sourceRealtimeTimestamp, FieldName.realtimeTimestamp] {
            if let v = fields.first(name), let micros = Int64(String(decoding: v, as: UTF8.self)) { return micros }
        }
        for name in ["@timestamp", "timestamp", "time"] {
            if let v = fields.first(name) {
                let bytes = Array(v)
                if let t = bytes.withUnsafeBufferPointer({ SyslogParser.isoTimestamp($0, 0) }) { return t.0 }
            }
        }
        return nil
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0

        var atEnd: Bool { i >= bytes.count }
        var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

        mutating func skipWhitespace() {
            while i < bytes.count, bytes[i] == 32 || bytes[i] == 9 || bytes[i] == 10 || bytes[i] == 13 { i += 1 }
        }

        mutating func expect(_ c: UInt8) throws(Failure) {
            skipWhitespace()
            guard i < bytes.count, bytes[i] == c else { throw .malformed(offset: i) }
            i += 1
        }

        mutating func object(prefix: String, depth: Int, into fields: inout EventFields) throws(Failure) {
            guard depth < 16 else { throw .tooDeep }
            try expect(UInt8(ascii: "{"))
            skipWhitespace()
            if peek == UInt8(ascii: "}") {
                i += 1
                return
            }
            while true {
                skipWhitespace()
                let keyBytes = try string()
                let key = prefix + String(decoding: keyBytes, as: UTF8.self)
                try expect(UInt8(ascii: ":"))
                try value(key: key, depth: depth, into: &fields)
                skipWhitespace()
                guard let c = peek else { throw .malformed(offset: i) }
                i += 1
                if c == UInt8(ascii: "}") { return }
                guard c == UInt8(ascii: ",") else { throw .malformed(offset: i - 1) }
            }
        }

        mutating func value(key: String, depth: Int, into fields: inout EventFields) throws(Failure) {
            skipWhitespace()
            guard let c = peek else { throw .malformed(offset: i) }
            switch c {
            case UInt8(ascii: "\""):
                fields.add(key, bytes: try string())
            case UInt8(ascii: "{"):
                try object(prefix: key + ".", depth: depth + 1, into: &fields)
            case UInt8(ascii: "["):
                try array(key: key, depth: depth, into: &fields)
            default:
                let s = i
                while i < bytes.count, !isDelimiter(bytes[i]) { i += 1 }
                guard i > s else { throw .malformed(offset: i) }
                let word = UnsafeBufferPointer(rebasing: bytes[s..<i])
                if word.elementsEqual("null".utf8) { return }
                guard word.elementsEqual("true".utf8) || word.elementsEqual("false".utf8) || Self.isNumber(word) else {
                    throw .malformed(offset: s)
                }
                fields.add(key, bytes: word)
            }
        }

        mutating func array(key: String, depth: Int, into fields: inout EventFields) throws(Failure) {
            try expect(UInt8(ascii: "["))
            skipWhitespace()
            if peek == UInt8(ascii: "]") {
                i += 1
                return
            }
            // journald encodes non-UTF-8 values as arrays of byte numbers.
            var scratch = EventFields()
            var byteValues: [UInt8] = []
            var allBytes = true
            while true {
                try value(key: key, depth: depth + 1, into: &scratch)
                if allBytes, let last = scratch.count > 0 ? scratch.value(at: scratch.count - 1) : nil,
                    let v = UInt8(String(decoding: last, as: UTF8.self))
                {
                    byteValues.append(v)
                } else {
                    allBytes = false
                }
                skipWhitespace()
                guard let c = peek else { throw .malformed(offset: i) }
                i += 1
                if c == UInt8(ascii: "]") { break }
                guard c == UInt8(ascii: ",") else { throw .malformed(offset: i - 1) }
            }
            if allBytes, byteValues.count == scratch.count {
                fields.add(key, bytes: byteValues)
            } else {
                for k in 0..<scratch.count { fields.add(scratch.name(at: k), bytes: scratch.value(at: k)) }
            }
        }

        func isDelimiter(_ c: UInt8) -> Bool {
            c == UInt8(ascii: ",") || c == UInt8(ascii: "}") || c == UInt8(ascii: "]") || c == 32 || c == 9 || c == 10
                || c == 13
        }

        static func isNumber(_ w: UnsafeBufferPointer<UInt8>) -> Bool {
            for c in w
            where
                !(c.isDigit || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c | 0x20 == UInt8(ascii: "e"))
            {
                return false
            }
            return true
        }

        mutating func string() throws(Failure) -> [UInt8] {
            guard peek == UInt8(ascii: "\"") else { throw .malformed(offset: i) }
            i += 1
            var out: [UInt8] = []
            let start = i
            // Fast path: no escapes.
            while i < bytes.count, bytes[i] != UInt8(ascii: "\""), bytes[i] != UInt8(ascii: "\\") { i += 1 }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<i]))
            while i < bytes.count {
                let c = bytes[i]
                if c == UInt8(ascii: "\"") {
                    i += 1
                    return out
                }
                if c != UInt8(ascii: "\\") {
                    out.append(c)
                    i += 1
                    continue
                }
                guard i + 1 < bytes.count else { break }
                let e = bytes[i + 1]
                i += 2
                switch e {
                case UInt8(ascii: "n"): out.append(10)
                case UInt8(ascii: "t"): out.append(9)
                case UInt8(ascii: "r"): out.append(13)
                case UInt8(ascii: "b"): out.append(8)
                case UInt8(ascii: "f"): out.append(12)
                case UInt8(ascii: "u"):
                    guard var scalar = hex4() else { throw .malformed(offset: i) }
                    if (0xD800..<0xDC00).contains(scalar), i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"),
                        bytes[i + 1] == UInt8(ascii: "u")
                    {
                        i += 2
                        if let low = hex4(), (0xDC00..<0xE000).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                    }
                    let u = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                    out.append(contentsOf: String(Character(u)).utf8)
                default: out.append(e)
                }
            }
            throw .malformed(offset: i)
        }

        mutating func hex4() -> UInt32? {
            guard i + 4 <= bytes.count else { return nil }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt32
                switch c {
                case 48...57: d = UInt32(c - 48)
                case 65...70: d = UInt32(c - 55)
                case 97...102: d = UInt32(c - 87)
                default: return nil
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }
    }
}
