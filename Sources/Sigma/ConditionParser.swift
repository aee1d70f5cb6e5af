/// Parses a Sigma condition into an expression over search identifiers.
///
/// Grammar (least to most binding): `or`, `and`, `not`, `1 of`/`any of`/`all of`, parentheses.
/// Identifiers starting with `_` are left out of `them` and of patterns not starting with `_`.
struct ConditionParser {
    enum Token: Equatable {
        case word(String)
        case open
        case close
        case pipe
    }

    let text: String
    let identifiers: [String]
    var tokens: [Token] = []
    var i = 0

    init(_ text: String, identifiers: [String]) {
        self.text = text
        self.identifiers = identifiers
    }

    struct Failure: Error {
        var message: String
    }

    mutating func parse() throws(Failure) -> ConditionExpression {
        if text.contains("|") {
            throw Failure(message: "aggregation expressions ('| count() ...') are obsolete; write a Sigma correlation rule")
        }
        try tokenize()
        guard !tokens.isEmpty else { throw Failure(message: "empty condition") }
        let e = try parseOr()
        if i < tokens.count {
            if tokens[i] == .pipe {
                throw Failure(message: "aggregation expressions ('| count() ...') are obsolete; write a Sigma correlation rule")
            }
            throw Failure(message: "unexpected \(describe(tokens[i])) in condition")
        }
        return e
    }

    func describe(_ t: Token) -> String {
        switch t {
        case .word(let w): "'\(w)'"
        case .open: "'('"
        case .close: "')'"
        case .pipe: "'|'"
        }
    }

    mutating func tokenize() throws(Failure) {
        var current = ""
        func flush() {
            if !current.isEmpty { tokens.append(.word(current)) }
            current = ""
        }
        for c in text {
            switch c {
            case "(": flush(); tokens.append(.open)
            case ")": flush(); tokens.append(.close)
            case "|": flush(); tokens.append(.pipe)
            case " ", "\t", "\n", "\r": flush()
            default:
                guard c.isLetter || c.isNumber || c == "_" || c == "-" || c == "*" || c == "." else {
                    throw Failure(message: "unexpected character '\(c)' in condition")
                }
                current.append(c)
            }
        }
        flush()
    }

    func isKeyword(_ t: Token, _ k: String) -> Bool {
        if case .word(let w) = t { return w == k }
        return false
    }

    mutating func parseOr() throws(Failure) -> ConditionExpression {
        var xs = [try parseAnd()]
        while i < tokens.count, isKeyword(tokens[i], "or") {
            i += 1
            xs.append(try parseAnd())
        }
        return xs.count == 1 ? xs[0] : .or(xs)
    }

    mutating func parseAnd() throws(Failure) -> ConditionExpression {
        var xs = [try parseNot()]
        while i < tokens.count, isKeyword(tokens[i], "and") {
            i += 1
            xs.append(try parseNot())
        }
        return xs.count == 1 ? xs[0] : .and(xs)
    }

    mutating func parseNot() throws(Failure) -> ConditionExpression {
        if i < tokens.count, isKeyword(tokens[i], "not") {
            i += 1
            return .not(try parseNot())
        }
        return try parsePrimary()
    }

    mutating func parsePrimary() throws(Failure) -> ConditionExpression {
        guard i < tokens.count else { throw Failure(message: "condition ends early") }
        switch tokens[i] {
        case .open:
            i += 1
            let e = try parseOr()
            guard i < tokens.count, tokens[i] == .close else { throw Failure(message: "missing ')' in condition") }
            i += 1
            return e
        case .close: throw Failure(message: "unexpected ')' in condition")
        case .pipe:
            throw Failure(message: "aggregation expressions ('| count() ...') are obsolete; write a Sigma correlation rule")
        case .word(let w):
            i += 1
            if ["and", "or"].contains(w) { throw Failure(message: "'\(w)' without a left operand") }
            if w == "near" { throw Failure(message: "'near' is obsolete; write a temporal correlation rule") }
            if w == "1" || w == "any" || w == "all" {
                guard i + 1 < tokens.count, isKeyword(tokens[i], "of"), case .word(let target) = tokens[i + 1] else {
                    throw Failure(message: "'\(w)' must be followed by 'of' and a pattern")
                }
                i += 2
                let names = try resolve(pattern: target)
                let refs = names.map { ConditionExpression.selection(identifiers.firstIndex(of: $0)!) }
                if refs.count == 1 { return refs[0] }
                return w == "all" ? .and(refs) : .or(refs)
            }
            if let n = Int(w), n > 1 { throw Failure(message: "'\(n) of' is not Sigma; use '1 of' or 'all of'") }
            guard let index = identifiers.firstIndex(of: w) else {
                throw Failure(message: "condition names '\(w)', which is not a search identifier of this rule")
            }
            return .selection(index)
        }
    }

    func resolve(pattern: String) throws(Failure) -> [String] {
        let names: [String]
        if pattern == "them" {
            names = identifiers.filter { !$0.hasPrefix("_") }
        } else {
            let matcher = StringMatcher(SigmaPattern(parts: Self.patternParts(pattern)), caseSensitive: true)
            names = identifiers.filter { ($0.hasPrefix("_") == pattern.hasPrefix("_")) && matcher.matches($0) }
        }
        guard !names.isEmpty else { throw Failure(message: "'\(pattern)' matches no search identifier") }
        return names
    }

    static func patternParts(_ p: String) -> [SigmaPattern.Part] {
        var parts: [SigmaPattern.Part] = []
        for piece in p.split(separator: "*", omittingEmptySubsequences: false).enumerated() {
            if piece.offset > 0 { parts.append(.anyRun) }
            if !piece.element.isEmpty { parts.append(.literal(Array(piece.element.utf8))) }
        }
        return parts
    }
}
