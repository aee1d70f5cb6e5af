/// Makes attacker-written text safe to show and to place in a prompt: terminal escape
/// sequences and control characters removed, invisible direction overrides removed, invalid
/// UTF-8 repaired, and the length cut.
package enum SafeText {
    /// `text` without ANSI/VT escape sequences, C0 and C1 control characters (a tab or line
    /// break becomes a space), bidirectional overrides and zero-width characters, cut to
    /// `limit` bytes on a character boundary with a marker saying how much was cut.
    package static func clean(_ text: some Collection<UInt8>, limit: Int = 512) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(min(text.count, limit + 16))
        let bytes = Array(text)
        var i = 0
        var dropped = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x1B {
                i = skipEscape(bytes, from: i)
                continue
            }
            if b < 0x20 || b == 0x7F {
                if (b == 0x09 || b == 0x0A || b == 0x0D), out.last != 0x20 { out.append(0x20) }
                i += 1
                continue
            }
            if b < 0x80 {
                if out.count < limit { out.append(b) } else { dropped += 1 }
                i += 1
                continue
            }
            let (scalar, length) = decode(bytes, at: i)
            i += length
            guard let scalar else {
                appendScalar(0xFFFD, to: &out, limit: limit, dropped: &dropped)
                continue
            }
            if isInvisibleControl(scalar) { continue }
            appendScalar(scalar, to: &out, limit: limit, dropped: &dropped)
        }
        var s = String(decoding: out, as: UTF8.self)
        if dropped > 0 { s += " …[\(dropped) bytes cut]" }
        return s
    }

    package static func clean(_ text: String, limit: Int = 512) -> String { clean(Array(text.utf8), limit: limit) }

    /// Whether `bytes` is printable ASCII alone (no control byte, DEL or non-ASCII byte), so
    /// that `clean` would return it unchanged. Tested eight bytes at a time.
    package static func isPrintableASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let high: UInt64 = 0x8080_8080_8080_8080
        var i = 0
        while i + 8 <= bytes.count {
            if printableBits(UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)) != high { return false }
            i += 8
        }
        while i < bytes.count {
            if bytes[i] < 0x20 || bytes[i] >= 0x7F { return false }
            i += 1
        }
        return true
    }

    /// The high bit of each byte of `x` that is printable ASCII (0x20 to 0x7E). For a byte below
    /// 0x80: + 0x60 reaches 0x80 from 0x20 up, + 0x01 only at 0x7F, and neither sum carries into
    /// the next byte. A byte from 0x80 up is cleared by `~x` (sums beside it may carry, but the
    /// word already fails).
    @inline(__always)
    package static func printableBits(_ x: UInt64) -> UInt64 {
        (x &+ 0x6060_6060_6060_6060) & ~(x &+ 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080
    }

    /// Whether `text` holds a byte that `clean` would remove or replace.
    package static func needsCleaning(_ text: String) -> Bool {
        text.unicodeScalars.contains { s in
            s.value < 0x20 || s.value == 0x7F || (0x80...0x9F).contains(s.value) || isInvisibleControl(s.value)
        }
    }

    /// C1 controls, bidirectional embeddings, overrides and isolates, zero-width characters and BOM.
    private static func isInvisibleControl(_ s: UInt32) -> Bool {
        (0x80...0x9F).contains(s) || (0x200B...0x200F).contains(s) || (0x202A...0x202E).contains(s)
            || (0x2066...0x2069).contains(s) || s == 0xFEFF || s == 0x2028 || s == 0x2029
    }

    /// Index after the escape sequence starting at `start` (ESC): CSI `ESC [ … final`, OSC
    /// `ESC ] … BEL or ESC \`, DCS/SOS/PM/APC up to ST, or ESC and one following byte.
    private static func skipEscape(_ b: [UInt8], from start: Int) -> Int {
        var i = start + 1
        guard i < b.count else { return i }
        switch b[i] {
        case UInt8(ascii: "["):
            i += 1
            while i < b.count, !(0x40...0x7E).contains(b[i]) { i += 1 }
            return min(b.count, i + 1)
        case UInt8(ascii: "]"), UInt8(ascii: "P"), UInt8(ascii: "X"), UInt8(ascii: "^"), UInt8(ascii: "_"):
            i += 1
            while i < b.count {
                if b[i] == 0x07 { return i + 1 }
                if b[i] == 0x1B, i + 1 < b.count, b[i + 1] == UInt8(ascii: "\\") { return i + 2 }
                i += 1
            }
            return i
        default:
            return i + 1
        }
    }

    private static func decode(_ b: [UInt8], at i: Int) -> (UInt32?, Int) {
        let lead = b[i]
        let (length, initial): (Int, UInt32) =
            switch lead {
            case 0xC2...0xDF: (2, UInt32(lead & 0x1F))
            case 0xE0...0xEF: (3, UInt32(lead & 0x0F))
            case 0xF0...0xF4: (4, UInt32(lead & 0x07))
            default: (0, 0)
            }
        guard length > 0, i + length <= b.count else { return (nil, 1) }
        var v = initial
        for k in 1..<length {
            let c = b[i + k]
            guard c & 0xC0 == 0x80 else { return (nil, k) }
            v = v << 6 | UInt32(c & 0x3F)
        }
        let minimum: UInt32 = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000
        guard v >= minimum, v <= 0x10FFFF, !(0xD800...0xDFFF).contains(v) else { return (nil, length) }
        return (v, length)
    }

    private static func appendScalar(_ v: UInt32, to out: inout [UInt8], limit: Int, dropped: inout Int) {
        var utf8: [UInt8] = []
        if v < 0x80 {
            utf8 = [UInt8(v)]
        } else if v < 0x800 {
            utf8 = [UInt8(0xC0 | v >> 6), UInt8(0x80 | v & 0x3F)]
        } else if v < 0x10000 {
            utf8 = [UInt8(0xE0 | v >> 12), UInt8(0x80 | v >> 6 & 0x3F), UInt8(0x80 | v & 0x3F)]
        } else {
            utf8 = [UInt8(0xF0 | v >> 18), UInt8(0x80 | v >> 12 & 0x3F), UInt8(0x80 | v >> 6 & 0x3F), UInt8(0x80 | v & 0x3F)]
        }
        if out.count + utf8.count <= limit { out.append(contentsOf: utf8) } else { dropped += utf8.count }
    }
}
