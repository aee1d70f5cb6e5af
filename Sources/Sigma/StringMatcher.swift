/// Matches one Sigma string pattern against field bytes, case-insensitively unless `cased`.
///
/// ASCII values fold byte by byte without allocating; a value with non-ASCII bytes is folded
/// with Unicode lower-casing first, so `ÄRGER` matches `ärger` (not only ASCII letters fold).
package struct StringMatcher: Sendable, Hashable {
    package enum Kind: Sendable, Hashable {
        case equals
        case contains
        case prefix
        case suffix
        case glob
    }

    package let kind: Kind
    package let caseSensitive: Bool
    /// For equals/contains/prefix/suffix: the literal, folded when case-insensitive.
    let needle: [UInt8]
    /// For glob: the folded pattern.
    let tokens: [SigmaPattern.Part]

    package init(_ pattern: SigmaPattern, caseSensitive: Bool) {
        self.caseSensitive = caseSensitive
        let parts = pattern.parts.map { part -> SigmaPattern.Part in
            if case .literal(let b) = part, !caseSensitive { return .literal(Fold.lowercased(b)) }
            return part
        }
        switch parts.count {
        case 0:
            kind = .equals
            needle = []
        case 1:
            if case .literal(let b) = parts[0] {
                kind = .equals
                needle = b
            } else if parts[0] == .anyRun {
                kind = .contains
                needle = []
            } else {
                kind = .glob
                needle = []
            }
        case 2 where parts[0] == .anyRun && parts[1].isLiteral:
            kind = .suffix
            if case .literal(let b) = parts[1] { needle = b } else { needle = [] }
        case 2 where parts[1] == .anyRun && parts[0].isLiteral:
            kind = .prefix
            if case .literal(let b) = parts[0] { needle = b } else { needle = [] }
        case 3 where parts[0] == .anyRun && parts[2] == .anyRun && parts[1].isLiteral:
            kind = .contains
            if case .literal(let b) = parts[1] { needle = b } else { needle = [] }
        default:
            kind = .glob
            needle = []
        }
        tokens = kind == .glob ? parts : []
    }

    package func matches(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        if caseSensitive || !Fold.hasNonASCII(value) {
            return match(value, fold: !caseSensitive)
        }
        let folded = Fold.lowercased(Array(value))
        return folded.withUnsafeBufferPointer { match($0, fold: false) }
    }

    package func matches(_ value: String) -> Bool {
        var v = value
        return v.withUTF8 { matches($0) }
    }

    @inline(__always)
    private func match(_ v: UnsafeBufferPointer<UInt8>, fold: Bool) -> Bool {
        switch kind {
        case .equals: return v.count == needle.count && Self.equal(v, 0, needle, fold)
        case .prefix: return v.count >= needle.count && Self.equal(v, 0, needle, fold)
        case .suffix: return v.count >= needle.count && Self.equal(v, v.count - needle.count, needle, fold)
        case .contains: return Self.find(needle, in: v, fold: fold)
        case .glob: return Self.glob(tokens, v, fold: fold)
        }
    }

    @inline(__always)
    static func equal(_ v: UnsafeBufferPointer<UInt8>, _ at: Int, _ n: [UInt8], _ fold: Bool) -> Bool {
        var k = 0
        if fold {
            while k < n.count {
                if Fold.lower(v[at + k]) != n[k] { return false }
                k += 1
            }
        } else {
            while k < n.count {
                if v[at + k] != n[k] { return false }
                k += 1
            }
        }
        return true
    }

    /// Whether `v` contains `n`; with `fold`, ASCII letters of `v` match either case (`n` must
    /// then be lower case).
    package static func find(_ n: [UInt8], in v: UnsafeBufferPointer<UInt8>, fold: Bool) -> Bool {
        if n.isEmpty { return true }
        if n.count > v.count { return false }
        guard let base = v.baseAddress else { return false }
        let first = n[0]
        let last = v.count - n.count
        // Candidates for the first byte, eight positions at a time. Folding a letter is setting
        // bit 0x20, and only its two cases give the lower case letter that way, so a folded
        // first letter is looked for in the haystack with that bit set.
        let letter = fold && first >= 0x61 && first <= 0x7A
        let caseBit: UInt64 = letter ? 0x2020_2020_2020_2020 : 0
        let pattern = UInt64(first) &* 0x0101_0101_0101_0101
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        var i = 0
        while i + 8 <= last + 1 {
            let x = (UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self) | caseBit) ^ pattern
            // A high bit for each zero byte (exact up to the first one, enough to find candidates).
            var zeros = (x &- ones) & ~x & high
            while zeros != 0 {
                let k = i + zeros.trailingZeroBitCount / 8
                if equal(v, k, n, fold) { return true }
                zeros &= zeros &- 1
            }
            i += 8
        }
        while i <= last {
            let c = fold ? Fold.lower(v[i]) : v[i]
            if c == first, equal(v, i, n, fold) { return true }
            i += 1
        }
        return false
    }

    /// Wildcard match with backtracking to the last `*`; `?` consumes one UTF-8 scalar.
    static func glob(_ p: [SigmaPattern.Part], _ v: UnsafeBufferPointer<UInt8>, fold: Bool) -> Bool {
        var pi = 0
        var si = 0
        var starP = -1
        var starS = 0
        while true {
            if pi < p.count {
                switch p[pi] {
                case .anyRun:
                    starP = pi
                    starS = si
                    pi += 1
                    continue
                case .anyOne:
                    if si < v.count {
                        si += Fold.scalarLength(v[si])
                        si = min(si, v.count)
                        pi += 1
                        continue
                    }
                case .literal(let b):
                    if si + b.count <= v.count, equal(v, si, b, fold) {
                        si += b.count
                        pi += 1
                        continue
                    }
                }
            } else if si == v.count {
                return true
            }
            guard starP >= 0, starS < v.count else { return false }
            starS += Fold.scalarLength(v[starS])
            si = min(starS, v.count)
            pi = starP + 1
        }
    }
}

/// Case folding helpers shared by matchers and the prefilter.
package enum Fold {
    package static let table: [UInt8] = (0...255).map { c in
        (65...90).contains(c) ? UInt8(c + 32) : UInt8(c)
    }

    /// `c` with ASCII upper case letters lowered (as `table` does, without a table lookup).
    @inline(__always)
    package static func lower(_ c: UInt8) -> UInt8 { c &- 65 < 26 ? c | 0x20 : c }

    /// Whether any byte of `v` is 0x80 or above; eight bytes at a time.
    @inline(__always)
    package static func hasNonASCII(_ v: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = v.baseAddress else { return false }
        var i = 0
        var high: UInt64 = 0
        while i + 8 <= v.count {
            high |= UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
            i += 8
        }
        if high & 0x8080_8080_8080_8080 != 0 { return true }
        while i < v.count {
            if v[i] >= 0x80 { return true }
            i += 1
        }
        return false
    }

    /// Lower-cases ASCII bytes, and Unicode text where non-ASCII bytes are present.
    package static func lowercased(_ bytes: [UInt8]) -> [UInt8] {
        if bytes.allSatisfy({ $0 < 0x80 }) { return bytes.map { table[Int($0)] } }
        if let s = String(validating: bytes, as: UTF8.self) { return Array(s.lowercased().utf8) }
        // Invalid UTF-8: fold what is ASCII, keep the rest byte for byte.
        return bytes.map { table[Int($0)] }
    }

    @inline(__always)
    static func scalarLength(_ lead: UInt8) -> Int {
        if lead < 0xC0 { return 1 }
        if lead < 0xE0 { return 2 }
        if lead < 0xF0 { return 3 }
        return 4
    }
}

extension StringMatcher {
    /// A lower-case ASCII literal that every matching value contains, for the prefilter.
    var requiredLiteral: [UInt8]? {
        var best: [UInt8]?
        switch kind {
        case .glob:
            for case .literal(let b) in tokens where b.count > (best?.count ?? 0) && b.allSatisfy({ $0 < 0x80 }) { best = b }
        default:
            best = needle
        }
        guard let b = best, !b.isEmpty, b.allSatisfy({ $0 < 0x80 }) else { return nil }
        return b.map { Fold.table[Int($0)] }
    }
}
