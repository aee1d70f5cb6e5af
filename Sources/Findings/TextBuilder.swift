/// Builds a short text as UTF-8 bytes and makes it a String once: an append is a copy of bytes,
/// where `String +=` checks and grows the string on every call.
package struct TextBuilder {
    package private(set) var bytes: [UInt8] = []

    package init(capacity: Int) { bytes.reserveCapacity(capacity) }

    package mutating func append(_ s: String) { bytes.append(contentsOf: s.utf8) }

    package mutating func append(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// `n` in decimal.
    package mutating func append(_ n: Int) {
        if n < 0 { bytes.append(UInt8(ascii: "-")) }
        let start = bytes.count
        var rest = n.magnitude
        repeat {
            bytes.append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        } while rest > 0
        // Reversed where it lies (reversing the slice `bytes[start...]` would copy the array).
        bytes.withUnsafeMutableBufferPointer { all in
            var digits = UnsafeMutableBufferPointer(rebasing: all[start...])
            digits.reverse()
        }
    }

    /// The text (invalid UTF-8, which the parts should not hold, is repaired).
    package var string: String { String(decoding: bytes, as: UTF8.self) }
}
