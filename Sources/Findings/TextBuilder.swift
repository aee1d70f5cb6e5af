/// Builds a short text as UTF-8 bytes and makes it a String once: an append is a copy of bytes,
/// where `String +=` checks and grows the string on every call.
package struct TextBuilder {
    package private(set) var bytes: [UInt8] = []

    package init(capacity: Int) { bytes.reserveCapacity(capacity) }

    package mutating func append(_ s: String) {
        // The bytes where they lie (native and small strings have them): one copy. Through the
        // UTF-8 view, the append went byte by byte.
        if s.utf8.withContiguousStorageIfAvailable({ bytes.append(contentsOf: $0) }) == nil { bytes.append(contentsOf: s.utf8) }
    }

    package mutating func append(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// `n` in decimal.
    package mutating func append(_ n: Int) {
        if n < 0 { bytes.append(UInt8(ascii: "-")) }
        let digits = DecimalText.digitCount(UInt64(n.magnitude))
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: digits) { room in
            DecimalText.write(UInt64(n.magnitude), endingAt: room.baseAddress! + digits)
            bytes.append(contentsOf: UnsafeBufferPointer(room))
        }
    }

    /// The text (invalid UTF-8, which the parts should not hold, is repaired).
    package var string: String { String(decoding: bytes, as: UTF8.self) }
}
