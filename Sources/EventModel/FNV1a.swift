/// 64-bit FNV-1a: a fast, allocation-free hash for keys built from log bytes (route caches,
/// session keys, distinct values). Not for anything an attacker could exploit by collision.
package struct FNV1a: Sendable {
    package private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    package init() {}

    @inline(__always)
    package mutating func combine(_ byte: UInt8) {
        value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
    }

    @inline(__always)
    package mutating func combine(_ bytes: some Sequence<UInt8>) {
        for b in bytes { combine(b) }
    }

    /// Ends one part of a composite key, so that ("ab", "c") and ("a", "bc") differ.
    @inline(__always)
    package mutating func separate(present: Bool = true) {
        value = (value ^ (present ? 0x1FF : 0x2FF)) &* 0x0000_0100_0000_01B3
    }
}
