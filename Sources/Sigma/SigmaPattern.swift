/// A Sigma string value after unescaping: literal text with `*` and `?` wildcards.
package struct SigmaPattern: Sendable, Hashable {
    package enum Part: Sendable, Hashable {
        case literal([UInt8])
        case anyRun
        case anyOne
    }

    package var parts: [Part]

    package init(parts: [Part]) { self.parts = Self.normalised(parts) }

    /// Parses Sigma's escaping: `\*` `\?` `\\` are escapes, any other backslash is literal.
    package init(sigma text: String) {
        var parts: [Part] = []
        var literal: [UInt8] = []
        let bytes = Array(text.utf8)
        var i = 0
        func flush() {
            if !literal.isEmpty {
                parts.append(.literal(literal))
                literal.removeAll()
            }
        }
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\\"), i + 1 < bytes.count,
                bytes[i + 1] == UInt8(ascii: "*") || bytes[i + 1] == UInt8(ascii: "?") || bytes[i + 1] == UInt8(ascii: "\\")
            {
                literal.append(bytes[i + 1])
                i += 2
                continue
            }
            if c == UInt8(ascii: "*") {
                flush()
                parts.append(.anyRun)
            } else if c == UInt8(ascii: "?") {
                flush()
                parts.append(.anyOne)
            } else {
                literal.append(c)
            }
            i += 1
        }
        flush()
        self.init(parts: parts)
    }

    /// A pattern that is exactly `bytes`, no wildcards.
    package init(literal bytes: [UInt8]) { self.init(parts: bytes.isEmpty ? [] : [.literal(bytes)]) }

    private static func normalised(_ parts: [Part]) -> [Part] {
        var out: [Part] = []
        for p in parts {
            switch (out.last, p) {
            case (.literal(let a)?, .literal(let b)):
                out[out.count - 1] = .literal(a + b)
            case (.anyRun?, .anyRun):
                continue
            case (_, .literal(let b)) where b.isEmpty:
                continue
            default:
                out.append(p)
            }
        }
        return out
    }

    package var hasWildcards: Bool { parts.contains { $0 != .anyRun && !$0.isLiteral } || parts.contains(.anyRun) }

    /// The plain bytes, if the pattern has no wildcards.
    package var literalBytes: [UInt8]? {
        if parts.isEmpty { return [] }
        if parts.count == 1, case .literal(let b) = parts[0] { return b }
        return nil
    }

    package func prependingAnyRun() -> SigmaPattern {
        parts.first == .anyRun ? self : SigmaPattern(parts: [.anyRun] + parts)
    }

    package func appendingAnyRun() -> SigmaPattern {
        parts.last == .anyRun ? self : SigmaPattern(parts: parts + [.anyRun])
    }

    /// The longest literal run: any match must contain it.
    package var longestLiteral: [UInt8]? {
        var best: [UInt8]?
        for case .literal(let b) in parts where b.count > (best?.count ?? 0) { best = b }
        return best
    }
}

extension SigmaPattern.Part {
    var isLiteral: Bool {
        if case .literal = self { return true }
        return false
    }
}
