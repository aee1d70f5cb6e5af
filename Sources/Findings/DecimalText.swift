/// Integers in decimal, written straight into a byte buffer: the JSON writer's numbers and the
/// counts in findings' texts.
enum DecimalText {
    /// How many digits `v` has.
    @inline(__always)
    static func digitCount(_ v: UInt64) -> Int {
        guard v >= 10 else { return 1 }
        // From the bit length: floor(log10(2) × bits) is the digit count or one less (1233 / 4096
        // is log10(2) from below), and one comparison tells which.
        let estimate = ((64 - v.leadingZeroBitCount) &* 1233) >> 12
        return v >= powersOfTen[estimate] ? estimate &+ 1 : estimate
    }

    /// 10⁰ to 10¹⁹, all the powers of ten a UInt64 holds.
    private static let powersOfTen: [UInt64] = (0..<20).map { (0..<$0).reduce(1) { power, _ in power * 10 } }

    /// Writes the digits of `v` so that the last lies just before `end`; `digitCount(v)` bytes
    /// before `end` must be writable. Two digits per division, from the last.
    @inline(__always)
    static func write(_ v: UInt64, endingAt end: UnsafeMutablePointer<UInt8>) {
        var rest = v
        var at = end
        digitPairs.withUTF8Buffer { pairs in
            while rest >= 100 {
                let pair = Int(rest % 100) * 2
                rest /= 100
                at -= 2
                at[0] = pairs[pair]
                at[1] = pairs[pair + 1]
            }
            if rest >= 10 {
                let pair = Int(rest) * 2
                at[-2] = pairs[pair]
                at[-1] = pairs[pair + 1]
            } else {
                at[-1] = UInt8(ascii: "0") + UInt8(rest)
            }
        }
    }

    /// "00" to "99", one after the other.
    private static let digitPairs: StaticString = """
        0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849\
        5051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899
        """
}
