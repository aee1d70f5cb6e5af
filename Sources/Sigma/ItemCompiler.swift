import EventModel
import Foundation
import Yams

/// Compiles `field|modifiers: values` entries and keyword lists into detection items.
struct ItemCompiler {
    let file: String
    /// Sigma field name → the event fields it reads.
    let mapField: (String) -> [String]
    let keywordFields: [String]

    static let knownModifiers: Set<String> = [
        "contains", "startswith", "endswith", "all", "cased", "exists", "neq", "re", "i", "ignorecase", "m",
        "multiline", "s", "dotall", "base64", "base64offset", "wide", "utf16le", "utf16be", "utf16", "windash",
        "cidr", "fieldref", "gt", "gte", "lt", "lte", "expand", "minute", "hour", "day", "week", "month", "year",
    ]

    func fail(_ node: Node, _ message: String) -> RuleError { RuleError(node.location(file), message) }

    func compile(key: String, keyNode: Node, value: Node) throws(RuleError) -> DetectionItem {
        var parts = key.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        let field = parts.removeFirst()
        let mods = parts
        for (k, m) in mods.enumerated() {
            guard Self.knownModifiers.contains(m) else { throw fail(keyNode, "unknown modifier '\(m)' in '\(key)'") }
            if mods[..<k].contains(m) { throw fail(keyNode, "modifier '\(m)' applied twice in '\(key)'") }
            if (m == "re" || m == "cidr"), k != 0 { throw fail(keyNode, "modifier '\(m)' must come first in '\(key)'") }
            if ["i", "ignorecase", "m", "multiline", "s", "dotall"].contains(m), !mods.contains("re") {
                throw fail(keyNode, "regular expression flag '\(m)' without 're' in '\(key)'")
            }
        }
        let has = Set(mods)
        if has.contains("exists"), mods.count > 1 { throw fail(keyNode, "'exists' cannot be combined with other modifiers") }
        if has.contains("exists"), field.isEmpty { throw fail(keyNode, "'exists' needs a field name") }

        let isKeyword = field.isEmpty
        var item = DetectionItem(
            fields: (isKeyword ? keywordFields : mapField(field)).map(FieldName.canonical), isKeyword: isKeyword, values: [],
            linkAll: has.contains("all"), negate: has.contains("neq"), exists: nil, matchesAbsent: false)

        var rawValues: [(SigmaValue, Node)] = []
        switch value {
        case .scalar(let s): rawValues = [(SigmaValue(scalar: s), value)]
        case .sequence(let seq):
            for v in seq {
                guard case .scalar(let s) = v else { throw fail(v, "a value list may hold only plain values") }
                rawValues.append((SigmaValue(scalar: s), v))
            }
            if seq.isEmpty { rawValues = [(.null, value)] }
        default:
            throw fail(value, "'\(key)' needs a value or a list of values, not a map")
        }
        if has.contains("all"), rawValues.count < 2, !isKeyword {
            // The spec forbids 'all' on one value; it is harmless, so accept it as AND of one.
        }

        if has.contains("exists") {
            guard rawValues.count == 1, case .bool(let b) = rawValues[0].0 else {
                throw fail(value, "'exists' takes true or false")
            }
            item.exists = b
            return item
        }
        if rawValues.contains(where: { $0.0 == .null }) {
            if rawValues.count > 1 { throw fail(value, "null may not be mixed into a value list; use a separate selection") }
            if isKeyword { throw fail(value, "a keyword cannot be null") }
            item.matchesAbsent = true
            return item
        }
        for (v, node) in rawValues {
            item.values.append(try compileValue(v, node: node, modifiers: mods, isKeyword: isKeyword))
        }
        return item
    }

    private func compileValue(_ v: SigmaValue, node: Node, modifiers mods: [String], isKeyword: Bool) throws(RuleError) -> [ValueTest] {
        let has = Set(mods)
        let cased = has.contains("cased")
        if has.contains("re") {
            guard case .string(let pattern) = v else { throw fail(node, "'re' needs a string value") }
            var options: ByteRegex.Options = []
            if has.contains("i") || has.contains("ignorecase") { options.insert(.ignoreCase) }
            if has.contains("m") || has.contains("multiline") { options.insert(.multiline) }
            if has.contains("s") || has.contains("dotall") { options.insert(.dotAll) }
            do {
                return [.regex(try ByteRegex(pattern, options: options))]
            } catch {
                throw fail(node, "bad regular expression '\(pattern)': \(error)")
            }
        }
        if has.contains("cidr") {
            guard let text = v.text, let block = CIDRBlock(text) else { throw fail(node, "bad CIDR network '\(v.text ?? "")'") }
            return [.cidr(block)]
        }
        for op in ["gt", "gte", "lt", "lte"] where has.contains(op) {
            guard let n = v.number else { throw fail(node, "'\(op)' needs a number") }
            return [.compare(ValueTest.ComparisonOperator(rawValue: op)!, n)]
        }
        for part in ["minute", "hour", "day", "week", "month", "year"] where has.contains(part) {
            guard case .int(let n) = v else { throw fail(node, "'\(part)' needs a whole number") }
            return [.timePart(ValueTest.TimePart(rawValue: part)!, n)]
        }
        if has.contains("fieldref") {
            guard let other = v.text, !other.contains("*") else { throw fail(node, "'fieldref' needs a field name") }
            let kind: StringMatcher.Kind =
                has.contains("contains") ? .contains : has.contains("startswith") ? .prefix : has.contains("endswith") ? .suffix : .equals
            return [.fieldRef(mapField(other).first ?? other, kind, caseSensitive: cased)]
        }
        guard let text = v.text else { throw fail(node, "unsupported value") }
        if has.contains("expand") || text.utf8.contains(UInt8(ascii: "%")) {
            if has.contains("expand"), let placeholder = Self.placeholder(in: text) {
                throw fail(node, "placeholder '%\(placeholder)%' has no value (logtriage defines no placeholders)")
            }
        }
        let encodes = mods.contains { ["base64", "base64offset", "wide", "utf16le", "utf16be", "utf16"].contains($0) }
        if case .int = v, mods.isEmpty || mods == ["cased"], !isKeyword {
            return [.number(v.number!, StringMatcher(SigmaPattern(literal: Array(text.utf8)), caseSensitive: cased))]
        }
        if case .float = v, mods.isEmpty, !isKeyword {
            return [.number(v.number!, StringMatcher(SigmaPattern(literal: Array(text.utf8)), caseSensitive: cased))]
        }

        var alternatives: [SigmaPattern]
        if encodes {
            let plain = SigmaPattern(sigma: text)
            guard let bytes = plain.literalBytes else {
                throw fail(node, "encoding modifiers need a value without wildcards")
            }
            var current: [[UInt8]] = [bytes]
            for m in mods {
                switch m {
                case "wide", "utf16le": current = current.map { Self.utf16($0, bigEndian: false, bom: false) }
                case "utf16be": current = current.map { Self.utf16($0, bigEndian: true, bom: false) }
                case "utf16": current = current.map { Self.utf16($0, bigEndian: false, bom: true) }
                case "base64": current = current.map { Array(Data($0).base64EncodedString().utf8) }
                case "base64offset": current = current.flatMap { Self.base64Offsets($0) }
                case "windash": current = current.flatMap { Self.windash($0) }
                default: break
                }
            }
            alternatives = current.map { SigmaPattern(literal: $0) }
        } else {
            var patterns = [SigmaPattern(sigma: text)]
            if has.contains("windash") {
                patterns = patterns.flatMap { p in
                    Self.windashParts(p)
                }
            }
            alternatives = patterns
        }
        let contains = has.contains("contains") || isKeyword
        alternatives = alternatives.map { p in
            var p = p
            if contains || has.contains("endswith") { p = p.prependingAnyRun() }
            if contains || has.contains("startswith") { p = p.appendingAnyRun() }
            return p
        }
        return alternatives.map { .string(StringMatcher($0, caseSensitive: cased)) }
    }

    static func placeholder(in text: String) -> String? {
        guard let a = text.firstIndex(of: "%") else { return nil }
        let rest = text[text.index(after: a)...]
        guard let b = rest.firstIndex(of: "%") else { return nil }
        let name = rest[..<b]
        return name.isEmpty ? nil : String(name)
    }

    static func utf16(_ bytes: [UInt8], bigEndian: Bool, bom: Bool) -> [UInt8] {
        var out: [UInt8] = bom ? (bigEndian ? [0xFE, 0xFF] : [0xFF, 0xFE]) : []
        for unit in String(decoding: bytes, as: UTF8.self).utf16 {
            let hi = UInt8(unit >> 8)
            let lo = UInt8(unit & 0xFF)
            out += bigEndian ? [hi, lo] : [lo, hi]
        }
        return out
    }

    /// The three base64 forms of `v` at each byte offset, trimmed to the stable middle (pySigma's rule).
    static func base64Offsets(_ v: [UInt8]) -> [[UInt8]] {
        let starts = [0, 2, 3]
        let ends: [Int?] = [nil, -3, -2]
        return (0..<3).map { i in
            let enc = Array(Data(Array(repeating: UInt8(ascii: " "), count: i) + v).base64EncodedString().utf8)
            let s = starts[i]
            var e = enc.count
            if let end = ends[(v.count + i) % 3] { e += end }
            return s < e ? Array(enc[s..<e]) : []
        }
    }

    static let dashes: [[UInt8]] = ["-", "/", "\u{2013}", "\u{2014}", "\u{2015}"].map { Array($0.utf8) }

    /// Every spelling of command-line switches: a '-' or '/' not after a word character and before one.
    static func windash(_ v: [UInt8]) -> [[UInt8]] {
        var results: [[UInt8]] = [[]]
        for (k, c) in v.enumerated() {
            let isWord: (UInt8) -> Bool = { ($0 | 0x20) >= 97 && ($0 | 0x20) <= 122 || $0 &- 48 < 10 || $0 == 95 }
            let prevWord = k > 0 && isWord(v[k - 1])
            let nextWord = k + 1 < v.count && isWord(v[k + 1])
            if (c == UInt8(ascii: "-") || c == UInt8(ascii: "/")), !prevWord, nextWord, results.count < 625 {
                results = results.flatMap { r in dashes.map { r + $0 } }
            } else {
                for i in results.indices { results[i].append(c) }
            }
        }
        return results
    }

    static func windashParts(_ p: SigmaPattern) -> [SigmaPattern] {
        var results: [[SigmaPattern.Part]] = [[]]
        for part in p.parts {
            if case .literal(let b) = part {
                let variants = windash(b)
                results = results.flatMap { r in variants.map { r + [.literal($0)] } }
            } else {
                for i in results.indices { results[i].append(part) }
            }
        }
        return results.map { SigmaPattern(parts: $0) }
    }
}
