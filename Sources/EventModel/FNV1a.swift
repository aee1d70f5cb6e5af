/// 64-bit FNV-1a: a fast, allocation-free hash for composite keys built from byte fields.
/// The byte-buffer overloads are inlinable so that callers in other modules get a plain loop
/// instead of a generic iterator per byte.
package struct FNV1a: Sendable {
    package var value: UInt64 = 0xcbf2_9ce4_8422_2325

    @inlinable
    package init() {}

    @inlinable @inline(__always)
    package mutating func combine(_ byte: UInt8) {
        value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
    }

    @inlinable
    package mutating func combine(_ bytes: UnsafeBufferPointer<UInt8>) {
        var v = value
        for b in bytes { v = (v ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        value = v
    }

    @inlinable
    package mutating func combine(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) {
        combine(UnsafeBufferPointer(rebasing: bytes))
    }

    @inlinable
    package mutating func combine(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBufferPointer { combine($0) }
    }

    @inlinable
    package mutating func combine(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { combine($0) }
    }

    /// Ends one part of a composite key, so that ("ab", "c") and ("a", "bc") differ.
    @inlinable @inline(__always)
    package mutating func separate(present: Bool = true) {
        value = (value ^ (present ? 0x1FF : 0x2FF)) &* 0x0000_0100_0000_01B3
    }
}
