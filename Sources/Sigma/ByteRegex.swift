/// A linear-time regular expression engine over UTF-8 bytes (a Pike VM).
///
/// Log lines are written by attackers, so a backtracking engine's worst case is a denial of
/// service. This engine runs in O(input × program) and also stops at a step budget. It covers
/// the flavour Sigma rules use: literals, `.`, classes, `\d \w \s \b` and their negations,
/// anchors, groups (capturing, `(?:`, named `(?<n>` and `(?P<n>`), alternation, greedy and
/// lazy quantifiers including `{n,m}`, and the flags `i`, `m`, `s` (inline or as options).
/// Case-insensitive matching folds ASCII letters.
package struct ByteRegex: Sendable {
    package struct Options: OptionSet, Sendable, Hashable {
        package let rawValue: Int
        package init(rawValue: Int) { self.rawValue = rawValue }
        package static let ignoreCase = Options(rawValue: 1)
        package static let multiline = Options(rawValue: 2)
        package static let dotAll = Options(rawValue: 4)
    }

    package struct SyntaxError: Error, CustomStringConvertible, Equatable {
        package var message: String
        package var offset: Int
        package var description: String { "\(message) at offset \(offset)" }
    }

    package let pattern: String
    /// Upper bound on VM steps per search; past it the search gives up and reports no match.
    package var stepBudget: Int
    /// The compiled pattern, shared by copies (a copy of a regex costs two references).
    let code: Code

    package static let maxProgramSize = 50_000

    /// Capture group names, by group index (index 0 is the whole match).
    package var groupNames: [String?] { code.groupNames }
    /// A lower-case byte string every match contains; inputs without it are rejected before the VM runs.
    package var requiredLiteral: [UInt8]? { code.requiredLiterals.first }
    /// Every run of two or more literal characters that every match contains (lower-cased),
    /// longest first: a screen can reject an input that lacks any one of them.
    package var requiredLiterals: [[UInt8]] { code.requiredLiterals }

    /// A compiled pattern and what is known of it before it runs.
    final class Code: Sendable {
        let program: [Inst]
        let sets: [CharSet]
        let groupNames: [String?]
        let requiredLiterals: [[UInt8]]
        /// The pattern can only match at offset 0.
        let anchoredAtStart: Bool
        /// The bytes a match can start with (nil: any, or the empty match); searches start only there.
        let firstBytes: ByteSet?
        /// Per instruction, what the rest of a match from there can start with (empty for large
        /// programs): the backtracker does not take a branch that would fail on the next byte.
        let lookahead: [Lookahead]
        /// Where the backtracker marks visits and which loops it runs in one place.
        let shape: BitStateBacktracker.Shape

        init(_ node: RegexNode, program: [Inst], sets: [CharSet], groupNames: [String?]) {
            self.program = program
            self.sets = sets
            self.groupNames = groupNames
            requiredLiterals = ByteRegex.requiredLiterals(node)
            anchoredAtStart = ByteRegex.isAnchoredAtStart(node)
            firstBytes = ByteRegex.firstBytes(program, sets)
            lookahead = ByteRegex.lookahead(program, sets)
            shape = BitStateBacktracker.Shape(program)
        }
    }

    package init(_ pattern: String, options: Options = [], stepBudget: Int = 20_000_000) throws(SyntaxError) {
        self.pattern = pattern
        var parser = RegexParser(Array(pattern.unicodeScalars), options: options)
        let node = try parser.parseAll()
        var compiler = RegexCompiler()
        try compiler.emitGroup(node, index: 0)
        compiler.program.append(.match)
        code = Code(node, program: compiler.program, sets: compiler.sets, groupNames: [nil] + parser.groupNames)
        self.stepBudget = stepBudget
    }

    package enum Outcome: Equatable {
        case match
        case noMatch
        /// The step budget ran out; treated as no match and counted by the caller.
        case budgetExceeded
    }

    /// Unanchored search: does the pattern match anywhere in `input`?
    package func search(_ input: UnsafeBufferPointer<UInt8>) -> Outcome {
        if let lit = requiredLiteral, !StringMatcher.find(lit, in: input, fold: true) { return .noMatch }
        if let bt = BitStateBacktracker(code, inputCount: input.count, slotCount: 0) {
            return bt.run(input) != nil ? .match : .noMatch
        }
        var vm = PikeVM(program: code.program, sets: code.sets, slotCount: 0, budget: stepBudget, anchored: code.anchoredAtStart)
        return vm.run(input, captures: false).outcome
    }

    package func matches(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { search($0) } == .match
    }

    /// Leftmost-first match with capture groups; each range is a byte range of `input`.
    /// `literalFound`: the caller has seen `requiredLiteral` in `input` (no second search).
    /// `backtrack: false` always takes the Pike VM (tests compare the two engines).
    package func firstMatch(_ input: UnsafeBufferPointer<UInt8>, literalFound: Bool = false, backtrack: Bool = true) -> [Range<Int>?]? {
        if !literalFound, let lit = requiredLiteral, !StringMatcher.find(lit, in: input, fold: true) { return nil }
        let slotCount = code.groupNames.count * 2
        if backtrack, let bt = BitStateBacktracker(code, inputCount: input.count, slotCount: slotCount) {
            return bt.run(input)
        }
        var vm = PikeVM(program: code.program, sets: code.sets, slotCount: slotCount, budget: stepBudget, anchored: code.anchoredAtStart)
        let result = vm.run(input, captures: true)
        guard result.outcome == .match, let slots = result.slots else { return nil }
        return Self.groups(slots, count: code.groupNames.count)
    }

    /// The `count` groups held in capture slots (start and end per group, -1 when unset).
    static func groups<Slots: RandomAccessCollection<Int>>(_ slots: Slots, count: Int) -> [Range<Int>?] where Slots.Index == Int {
        var groups: [Range<Int>?] = []
        groups.reserveCapacity(count)
        for g in 0..<count {
            let s = slots[2 * g]
            let e = slots[2 * g + 1]
            groups.append(s >= 0 && e >= s ? s..<e : nil)
        }
        return groups
    }
}

extension ByteRegex {
    /// The runs of two or more literal characters that every match must contain (lower-cased,
    /// without repeats), longest first.
    static func requiredLiterals(_ node: RegexNode) -> [[UInt8]] {
        var runs: [[UInt8]] = []
        func consider(_ run: [UInt8]) {
            if run.count >= 2, !runs.contains(run) { runs.append(run) }
        }
        // Only parts every match passes through are walked: concatenations, groups and
        // repeats of at least one, never the branches of an alternation.
        func walk(_ n: RegexNode) {
            switch n {
            case .concat(let items):
                var run: [UInt8] = []
                for item in items {
                    if case .scalar(let v, _) = item, let u = Unicode.Scalar(v) {
                        run += Fold.lowercased(Array(String(Character(u)).utf8))
                        continue
                    }
                    if case .empty = item { continue }
                    if case .lineStart = item { continue }
                    if case .lineEnd = item { continue }
                    if case .wordBoundary = item { continue }
                    consider(run)
                    run = []
                    walk(item)
                }
                consider(run)
            case .group(let inner, _): walk(inner)
            case .repeatNode(let inner, let lo, _, _) where lo >= 1: walk(inner)
            case .scalar(let v, _):
                if let u = Unicode.Scalar(v) { consider(Fold.lowercased(Array(String(Character(u)).utf8))) }
            default: break
            }
        }
        walk(node)
        // Stable: of runs of equal length, the first in the pattern comes first.
        return runs.enumerated().sorted { ($0.element.count, $1.offset) > ($1.element.count, $0.offset) }.map(\.element)
    }

    /// What a match can go on with from an instruction: the bytes the next character can start
    /// with (every non-ASCII byte when a non-ASCII character can come), and whether it can
    /// succeed at the end of the input.
    struct Lookahead {
        var bytes = ByteSet()
        var atEnd = false
    }

    /// Programs longer than this get no lookahead (working it out is quadratic in the worst case).
    static let lookaheadLimit = 1024

    /// The bytes a match can start with: the lookahead of the first instruction. Nil when a
    /// match can be empty or start with a non-ASCII character (a search steps byte by byte to
    /// the candidate starts, so it then tries every character boundary instead).
    static func firstBytes(_ program: [Inst], _ sets: [CharSet]) -> ByteSet? {
        var mark = [Int](repeating: -1, count: program.count)
        var pending: [Int] = []
        let first = lookahead(from: 0, program, sets, mark: &mark, pending: &pending)
        return first.atEnd || first.bytes.hasNonASCII ? nil : first.bytes
    }

    /// `Lookahead` for every instruction.
    static func lookahead(_ program: [Inst], _ sets: [CharSet]) -> [Lookahead] {
        guard program.count <= lookaheadLimit else { return [] }
        var mark = [Int](repeating: -1, count: program.count)
        var pending: [Int] = []
        return program.indices.map { lookahead(from: $0, program, sets, mark: &mark, pending: &pending) }
    }

    /// What a match can go on with from `start`: the consuming instructions reachable without
    /// consuming (through saves, jumps, splits and assertions, which are assumed to pass).
    /// `mark` and `pending` are scratch space shared between calls (`mark` must not hold `start`).
    private static func lookahead(
        from start: Int, _ program: [Inst], _ sets: [CharSet], mark: inout [Int], pending: inout [Int]
    ) -> Lookahead {
        var l = Lookahead()
        pending.append(start)
        while let pc = pending.popLast() {
            guard pc < program.count, mark[pc] != start else { continue }
            mark[pc] = start
            switch program[pc] {
            case .save, .assertWord, .assertStart: pending.append(pc + 1)
            case .jump(let t): pending.append(t)
            case .split(let a, let b): pending += [a, b]
            case .assertEnd(let multiline):
                l.atEnd = true
                if multiline { l.bytes.insert(10) }
            case .match:
                // An empty rest matches anywhere.
                l.atEnd = true
                l.bytes.insertAll()
            case .scalar(let v):
                if v < 0x80 { l.bytes.insert(UInt8(v)) } else { l.bytes.insertNonASCII() }
            case .scalarFold(let v):
                if v < 0x80 {
                    l.bytes.insert(UInt8(v))
                    l.bytes.insert(UInt8(v) & ~0x20)
                } else {
                    l.bytes.insertNonASCII()
                }
            case .set(let k):
                for b in UInt8(0)..<0x80 where sets[k].matches(UInt32(b)) { l.bytes.insert(b) }
                if sets[k].negated || sets[k].ranges.contains(where: { $0.upperBound >= 0x80 }) { l.bytes.insertNonASCII() }
            case .any(let dotAll):
                l.bytes.insertAll()
                if !dotAll { l.bytes.remove(10) }
            }
        }
        return l
    }

    static func isAnchoredAtStart(_ node: RegexNode) -> Bool {
        switch node {
        case .lineStart(let multiline): return !multiline
        case .concat(let items): return items.first.map(isAnchoredAtStart) ?? false
        case .group(let inner, _): return isAnchoredAtStart(inner)
        default: return false
        }
    }
}

// MARK: - Syntax tree

indirect enum RegexNode {
    case empty
    case scalar(UInt32, fold: Bool)
    case any(dotAll: Bool)
    case set(CharSet)
    case concat([RegexNode])
    case alternate([RegexNode])
    case repeatNode(RegexNode, min: Int, max: Int?, greedy: Bool)
    case group(RegexNode, index: Int?)
    case lineStart(multiline: Bool)
    case lineEnd(multiline: Bool)
    case wordBoundary(Bool)
}

/// A set of bytes, one bit each.
struct ByteSet {
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    mutating func insert(_ b: UInt8) {
        let bit = UInt64(1) << UInt64(b & 63)
        switch b >> 6 {
        case 0: words.0 |= bit
        case 1: words.1 |= bit
        case 2: words.2 |= bit
        default: words.3 |= bit
        }
    }

    mutating func insertAll() { words = (~0, ~0, ~0, ~0) }

    /// The ASCII bytes in the set: bytes 0 to 63, then 64 to 127, one bit each.
    var ascii: (low: UInt64, high: UInt64) { (words.0, words.1) }

    /// Every byte from 0x80: lead and continuation bytes of non-ASCII characters, and invalid ones.
    /// Some byte from 0x80 is in the set.
    var hasNonASCII: Bool { words.2 | words.3 != 0 }

    mutating func insertNonASCII() {
        words.2 = ~0
        words.3 = ~0
    }

    mutating func remove(_ b: UInt8) {
        let bit = ~(UInt64(1) << UInt64(b & 63))
        switch b >> 6 {
        case 0: words.0 &= bit
        case 1: words.1 &= bit
        case 2: words.2 &= bit
        default: words.3 &= bit
        }
    }

    /// A choice of words, not a switch: the compiler turns a switch into an indirect jump.
    @inline(__always)
    func contains(_ b: UInt8) -> Bool {
        let word = b < 128 ? (b < 64 ? words.0 : words.1) : (b < 192 ? words.2 : words.3)
        return word & (1 << UInt64(b & 63)) != 0
    }
}

struct CharSet {
    var ranges: [ClosedRange<UInt32>] = []
    var negated = false
    var fold = false
    /// ASCII membership (after folding and negation), filled in by `sealed()`.
    var ascii: (UInt64, UInt64) = (0, 0)

    /// A copy with the ASCII bitmap computed, for the matchers' fast path.
    func sealed() -> CharSet {
        var s = self
        var lo: UInt64 = 0
        var hi: UInt64 = 0
        for c in UInt32(0)..<128 where contains(c) {
            if c < 64 { lo |= 1 << UInt64(c) } else { hi |= 1 << UInt64(c - 64) }
        }
        s.ascii = (lo, hi)
        return s
    }

    @inline(__always)
    func matches(_ c: UInt32) -> Bool {
        if c < 64 { return ascii.0 & (1 << UInt64(c)) != 0 }
        if c < 128 { return ascii.1 & (1 << UInt64(c - 64)) != 0 }
        return contains(c)
    }

    func contains(_ c: UInt32) -> Bool {
        var hit = ranges.contains { $0.contains(c) }
        if !hit, fold {
            if (65...90).contains(c) {
                hit = ranges.contains { $0.contains(c + 32) }
            } else if (97...122).contains(c) {
                hit = ranges.contains { $0.contains(c - 32) }
            }
        }
        return hit != negated
    }

    static let digit = CharSet(ranges: [48...57])
    static let word = CharSet(ranges: [48...57, 65...90, 95...95, 97...122])
    static let space = CharSet(ranges: [9...13, 32...32])
}

struct RegexParser {
    let s: [Unicode.Scalar]
    var i = 0
    var options: ByteRegex.Options
    var groupNames: [String?] = []

    init(_ s: [Unicode.Scalar], options: ByteRegex.Options) {
        self.s = s
        self.options = options
    }

    func fail(_ m: String) -> ByteRegex.SyntaxError { ByteRegex.SyntaxError(message: m, offset: i) }

    mutating func parseAll() throws(ByteRegex.SyntaxError) -> RegexNode {
        let node = try parseAlternation()
        if i < s.count { throw fail(s[i] == ")" ? "unbalanced ')'" : "unexpected '\(s[i])'") }
        return node
    }

    mutating func parseAlternation() throws(ByteRegex.SyntaxError) -> RegexNode {
        var branches = [try parseConcat()]
        while i < s.count, s[i] == "|" {
            i += 1
            branches.append(try parseConcat())
        }
        return branches.count == 1 ? branches[0] : .alternate(branches)
    }

    mutating func parseConcat() throws(ByteRegex.SyntaxError) -> RegexNode {
        var items: [RegexNode] = []
        while i < s.count, s[i] != "|", s[i] != ")" {
            var atom = try parseAtom()
            atom = try parseQuantifiers(atom)
            items.append(atom)
        }
        if items.isEmpty { return .empty }
        return items.count == 1 ? items[0] : .concat(items)
    }

    mutating func parseQuantifiers(_ atom: RegexNode) throws(ByteRegex.SyntaxError) -> RegexNode {
        var atom = atom
        while i < s.count {
            var lo = 0
            var hi: Int?
            switch s[i] {
            case "*": (lo, hi) = (0, nil); i += 1
            case "+": (lo, hi) = (1, nil); i += 1
            case "?": (lo, hi) = (0, 1); i += 1
            case "{":
                guard let (a, b, end) = braces(from: i) else { return atom }
                (lo, hi) = (a, b)
                i = end
            default: return atom
            }
            if case .empty = atom { throw fail("quantifier without operand") }
            var greedy = true
            if i < s.count, s[i] == "?" {
                greedy = false
                i += 1
            } else if i < s.count, s[i] == "+" {
                i += 1  // possessive: matching semantics equal greedy for a yes/no answer
            }
            if let hi, hi < lo { throw fail("bad repetition range") }
            if lo > 1000 || (hi ?? 0) > 1000 { throw fail("repetition count over 1000") }
            atom = .repeatNode(atom, min: lo, max: hi, greedy: greedy)
        }
        return atom
    }

    /// `{n}`, `{n,}`, `{n,m}`; anything else is a literal brace.
    func braces(from start: Int) -> (Int, Int?, Int)? {
        var j = start + 1
        func number() -> Int? {
            var v: Int?
            while j < s.count, let d = s[j].properties.numericType != nil ? Int(String(s[j])) : nil, s[j].isASCII {
                v = (v ?? 0) * 10 + d
                if v! > 100_000 { return nil }
                j += 1
            }
            return v
        }
        guard let lo = number() else { return nil }
        if j < s.count, s[j] == "}" { return (lo, lo, j + 1) }
        guard j < s.count, s[j] == "," else { return nil }
        j += 1
        let hi = number()
        guard j < s.count, s[j] == "}" else { return nil }
        return (lo, hi, j + 1)
    }

    var fold: Bool { options.contains(.ignoreCase) }

    mutating func parseAtom() throws(ByteRegex.SyntaxError) -> RegexNode {
        let c = s[i]
        switch c {
        case "(":
            return try parseGroup()
        case "[":
            return .set(try parseClass())
        case ".":
            i += 1
            return .any(dotAll: options.contains(.dotAll))
        case "^":
            i += 1
            return .lineStart(multiline: options.contains(.multiline))
        case "$":
            i += 1
            return .lineEnd(multiline: options.contains(.multiline))
        case "\\":
            return try parseEscape(inClass: false)
        case "*", "+", "?":
            throw fail("quantifier without operand")
        default:
            i += 1
            return .scalar(c.value, fold: fold)
        }
    }

    mutating func parseGroup() throws(ByteRegex.SyntaxError) -> RegexNode {
        i += 1
        var index: Int? = nil
        let saved = options
        if i < s.count, s[i] == "?" {
            i += 1
            guard i < s.count else { throw fail("unterminated group") }
            if s[i] == ":" {
                i += 1
            } else if s[i] == "<" || (s[i] == "P" && i + 1 < s.count && s[i + 1] == "<") {
                if s[i] == "P" { i += 1 }
                i += 1
                var name = ""
                while i < s.count, s[i] != ">" {
                    name.unicodeScalars.append(s[i])
                    i += 1
                }
                guard i < s.count, !name.isEmpty else { throw fail("bad group name") }
                if name.first == "=" || name.first == "!" { throw fail("lookbehind is not supported") }
                i += 1
                groupNames.append(name)
                index = groupNames.count
            } else if s[i] == "=" || s[i] == "!" {
                throw fail("lookahead is not supported")
            } else {
                // Inline flags: (?ims) for the rest of the group, (?ims:...) scoped, (?-i) to clear.
                var on = true
                var newOptions = options
                while i < s.count, s[i] != ")", s[i] != ":" {
                    switch s[i] {
                    case "-": on = false
                    case "i": if on { newOptions.insert(.ignoreCase) } else { newOptions.remove(.ignoreCase) }
                    case "m": if on { newOptions.insert(.multiline) } else { newOptions.remove(.multiline) }
                    case "s": if on { newOptions.insert(.dotAll) } else { newOptions.remove(.dotAll) }
                    case "x", "u", "U": break
                    default: throw fail("unsupported group flag '\(s[i])'")
                    }
                    i += 1
                }
                guard i < s.count else { throw fail("unterminated group") }
                if s[i] == ")" {
                    i += 1
                    options = newOptions  // applies to the rest of the enclosing group
                    return .empty
                }
                i += 1
                options = newOptions
                let inner = try parseAlternation()
                options = saved
                guard i < s.count, s[i] == ")" else { throw fail("missing ')'") }
                i += 1
                return .group(inner, index: nil)
            }
        } else {
            groupNames.append(nil)
            index = groupNames.count
        }
        let inner = try parseAlternation()
        options = saved
        guard i < s.count, s[i] == ")" else { throw fail("missing ')'") }
        i += 1
        return .group(inner, index: index)
    }

    mutating func parseEscape(inClass: Bool) throws(ByteRegex.SyntaxError) -> RegexNode {
        i += 1
        guard i < s.count else { throw fail("trailing backslash") }
        let c = s[i]
        i += 1
        var set: CharSet?
        switch c {
        case "d": set = .digit
        case "D": set = .digit; set!.negated = true
        case "w": set = .word
        case "W": set = .word; set!.negated = true
        case "s": set = .space
        case "S": set = .space; set!.negated = true
        case "b" where !inClass: return .wordBoundary(true)
        case "B" where !inClass: return .wordBoundary(false)
        case "A" where !inClass: return .lineStart(multiline: false)
        case "z", "Z": if !inClass { return .lineEnd(multiline: false) }
        case "n": return .scalar(10, fold: false)
        case "t": return .scalar(9, fold: false)
        case "r": return .scalar(13, fold: false)
        case "f": return .scalar(12, fold: false)
        case "v": return .scalar(11, fold: false)
        case "0": return .scalar(0, fold: false)
        case "x":
            var v: UInt32 = 0
            var n = 0
            if i < s.count, s[i] == "{" {
                i += 1
                while i < s.count, s[i] != "}", let h = s[i].hexValue { v = v * 16 + h; i += 1; n += 1 }
                guard i < s.count, n > 0 else { throw fail("bad \\x escape") }
                i += 1
            } else {
                while n < 2, i < s.count, let h = s[i].hexValue { v = v * 16 + h; i += 1; n += 1 }
                guard n == 2 else { throw fail("bad \\x escape") }
            }
            return .scalar(v, fold: fold)
        default:
            if c.properties.isAlphabetic || ("1"..."9").contains(c) {
                throw fail("unsupported escape '\\\(c)'")
            }
            return .scalar(c.value, fold: fold)
        }
        if let set { return .set(set) }
        return .scalar(c.value, fold: fold)
    }

    mutating func parseClass() throws(ByteRegex.SyntaxError) -> CharSet {
        i += 1
        var set = CharSet()
        set.fold = fold
        if i < s.count, s[i] == "^" {
            set.negated = true
            i += 1
        }
        var first = true
        while i < s.count, s[i] != "]" || first {
            first = false
            var lo: UInt32
            if s[i] == "\\" {
                let node = try parseEscape(inClass: true)
                switch node {
                case .set(let inner):
                    if inner.negated {
                        // [^...\S] style: expand the complement over the BMP-free ASCII range.
                        for c in UInt32(0)...127 where inner.contains(c) { set.ranges.append(c...c) }
                        set.ranges.append(128...0x10FFFF)
                    } else {
                        set.ranges.append(contentsOf: inner.ranges)
                    }
                    continue
                case .scalar(let v, _): lo = v
                default: throw fail("bad escape in class")
                }
            } else if s[i] == "[", i + 1 < s.count, s[i + 1] == ":" {
                guard let end = (i..<s.count).first(where: { s[$0] == "]" && $0 > i + 1 }) else { throw fail("bad class") }
                let name = String(String.UnicodeScalarView(s[(i + 2)..<(end - 1)]))
                switch name {
                case "alpha": set.ranges += [65...90, 97...122]
                case "digit": set.ranges += [48...57]
                case "alnum": set.ranges += [48...57, 65...90, 97...122]
                case "space": set.ranges += [9...13, 32...32]
                case "upper": set.ranges += [65...90]
                case "lower": set.ranges += [97...122]
                case "xdigit": set.ranges += [48...57, 65...70, 97...102]
                case "punct": set.ranges += [33...47, 58...64, 91...96, 123...126]
                default: throw fail("unknown class [:\(name):]")
                }
                i = end + 1
                continue
            } else {
                lo = s[i].value
                i += 1
            }
            if i + 1 < s.count, s[i] == "-", s[i + 1] != "]" {
                i += 1
                var hi: UInt32
                if s[i] == "\\" {
                    guard case .scalar(let v, _) = try parseEscape(inClass: true) else { throw fail("bad class range") }
                    hi = v
                } else {
                    hi = s[i].value
                    i += 1
                }
                guard hi >= lo else { throw fail("bad class range") }
                set.ranges.append(lo...hi)
            } else {
                set.ranges.append(lo...lo)
            }
        }
        guard i < s.count else { throw fail("missing ']'") }
        i += 1
        return set
    }
}

extension Unicode.Scalar {
    var hexValue: UInt32? {
        switch value {
        case 48...57: value - 48
        case 65...70: value - 55
        case 97...102: value - 87
        default: nil
        }
    }
}

// MARK: - Program

enum Inst {
    case scalar(UInt32)
    case scalarFold(UInt32)
    case any(dotAll: Bool)
    /// Index into the program's character sets.
    case set(Int)
    case split(Int, Int)  // prefer the first
    case jump(Int)
    case save(Int)
    case assertStart(multiline: Bool)
    case assertEnd(multiline: Bool)
    case assertWord(Bool)
    case match

    /// Whether this instruction takes the decoded character `ch` (invalid bytes decode above
    /// U+10FFFF and are taken by nothing but a dot); false for instructions that take none.
    @inline(__always)
    func takes<Sets: RandomAccessCollection<CharSet>>(_ ch: UInt32, _ sets: Sets) -> Bool where Sets.Index == Int {
        switch self {
        case .scalar(let v): ch == v
        case .scalarFold(let v): (ch | 0x20) == v && ch >= 65 && ch <= 122
        case .any(let dotAll): dotAll || ch != 10
        case .set(let k): ch < 0x110000 && sets[k].matches(ch)
        default: false
        }
    }
}

struct RegexCompiler {
    var program: [Inst] = []
    var sets: [CharSet] = []

    mutating func push(_ inst: Inst) throws(ByteRegex.SyntaxError) {
        if program.count >= ByteRegex.maxProgramSize {
            throw ByteRegex.SyntaxError(message: "pattern too large (over \(ByteRegex.maxProgramSize) instructions)", offset: 0)
        }
        program.append(inst)
    }

    mutating func emitGroup(_ node: RegexNode, index: Int) throws(ByteRegex.SyntaxError) {
        try push(.save(2 * index))
        try emit(node)
        try push(.save(2 * index + 1))
    }

    mutating func emit(_ node: RegexNode) throws(ByteRegex.SyntaxError) {
        switch node {
        case .empty: break
        case .scalar(let v, let fold):
            let isLetter = (65...90).contains(v) || (97...122).contains(v)
            try push(fold && isLetter ? .scalarFold(v | 0x20) : .scalar(v))
        case .any(let dotAll): try push(.any(dotAll: dotAll))
        case .set(let set):
            sets.append(set.sealed())
            try push(.set(sets.count - 1))
        case .concat(let items): for item in items { try emit(item) }
        case .alternate(let branches):
            var jumps: [Int] = []
            for (k, branch) in branches.enumerated() {
                if k < branches.count - 1 {
                    let split = program.count
                    try push(.split(split + 1, 0))
                    try emit(branch)
                    jumps.append(program.count)
                    try push(.jump(0))
                    program[split] = .split(split + 1, program.count)
                } else {
                    try emit(branch)
                }
            }
            for j in jumps { program[j] = .jump(program.count) }
        case .group(let inner, let index):
            if let index { try emitGroup(inner, index: index) } else { try emit(inner) }
        case .repeatNode(let inner, let lo, let hi, let greedy):
            for _ in 0..<lo { try emit(inner) }
            if let hi {
                // Each optional copy: split(body, end)
                var patches: [Int] = []
                for _ in lo..<hi {
                    let split = program.count
                    try push(.split(0, 0))
                    patches.append(split)
                    try emit(inner)
                }
                let end = program.count
                for p in patches { program[p] = greedy ? .split(p + 1, end) : .split(end, p + 1) }
            } else {
                let split = program.count
                try push(.split(0, 0))
                try emit(inner)
                try push(.jump(split))
                let end = program.count
                program[split] = greedy ? .split(split + 1, end) : .split(end, split + 1)
            }
        case .lineStart(let m): try push(.assertStart(multiline: m))
        case .lineEnd(let m): try push(.assertEnd(multiline: m))
        case .wordBoundary(let b): try push(.assertWord(b))
        }
    }
}

// MARK: - Pike VM

struct PikeVM {
    let program: [Inst]
    let sets: [CharSet]
    let slotCount: Int
    var budget: Int

    let anchored: Bool

    init(program: [Inst], sets: [CharSet], slotCount: Int, budget: Int, anchored: Bool) {
        self.program = program
        self.sets = sets
        self.slotCount = slotCount
        self.budget = budget
        self.anchored = anchored
    }

    struct ThreadList {
        var pcs: [Int32]
        var slots: [[Int]]
        var onList: [UInt32]  // generation stamp per pc
    }

    /// Decodes the scalar at `i`; an invalid byte decodes to itself plus 0x110000 so it matches only `.`.
    @inline(__always)
    static func decode(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> (UInt32, Int) {
        let c0 = b[i]
        if c0 < 0x80 { return (UInt32(c0), 1) }
        let n = b.count
        if c0 & 0xE0 == 0xC0, i + 1 < n, b[i + 1] & 0xC0 == 0x80 {
            let v = UInt32(c0 & 0x1F) << 6 | UInt32(b[i + 1] & 0x3F)
            if v >= 0x80 { return (v, 2) }
        } else if c0 & 0xF0 == 0xE0, i + 2 < n, b[i + 1] & 0xC0 == 0x80, b[i + 2] & 0xC0 == 0x80 {
            let v = UInt32(c0 & 0x0F) << 12 | UInt32(b[i + 1] & 0x3F) << 6 | UInt32(b[i + 2] & 0x3F)
            if v >= 0x800 { return (v, 3) }
        } else if c0 & 0xF8 == 0xF0, i + 3 < n, b[i + 1] & 0xC0 == 0x80, b[i + 2] & 0xC0 == 0x80, b[i + 3] & 0xC0 == 0x80 {
            let v =
                UInt32(c0 & 0x07) << 18 | UInt32(b[i + 1] & 0x3F) << 12 | UInt32(b[i + 2] & 0x3F) << 6
                | UInt32(b[i + 3] & 0x3F)
            if v >= 0x10000, v <= 0x10FFFF { return (v, 4) }
        }
        return (0x110000 + UInt32(c0), 1)
    }

    static func isWord(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> Bool {
        guard i >= 0, i < b.count else { return false }
        let c = b[i]
        return (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c) || c == 95
    }

    mutating func run(_ input: UnsafeBufferPointer<UInt8>, captures: Bool) -> (outcome: ByteRegex.Outcome, slots: [Int]?) {
        let size = program.count
        var current = ThreadList(pcs: [], slots: [], onList: Array(repeating: 0, count: size))
        var next = ThreadList(pcs: [], slots: [], onList: Array(repeating: 0, count: size))
        current.pcs.reserveCapacity(size)
        next.pcs.reserveCapacity(size)
        var generation: UInt32 = 1
        var matched: [Int]? = nil
        var i = 0
        let emptySlots = captures ? Array(repeating: -1, count: slotCount) : []
        var stack: [(Int, [Int])] = []

        func addThread(_ list: inout ThreadList, _ pc0: Int, _ slots0: [Int], _ at: Int, _ gen: UInt32, _ budget: inout Int) {
            stack.removeAll(keepingCapacity: true)
            stack.append((pc0, slots0))
            while let (pc, slots) = stack.popLast() {
                budget -= 1
                if list.onList[pc] == gen { continue }
                list.onList[pc] = gen
                switch program[pc] {
                case .jump(let t): stack.append((t, slots))
                case .split(let a, let b):
                    stack.append((b, slots))
                    stack.append((a, slots))
                case .save(let k):
                    if captures, k < slots.count {
                        var s = slots
                        s[k] = at
                        stack.append((pc + 1, s))
                    } else {
                        stack.append((pc + 1, slots))
                    }
                case .assertStart(let m):
                    if at == 0 || (m && input[at - 1] == 10) { stack.append((pc + 1, slots)) }
                case .assertEnd(let m):
                    if at == input.count || (m && input[at] == 10) { stack.append((pc + 1, slots)) }
                case .assertWord(let want):
                    let boundary = Self.isWord(input, at - 1) != Self.isWord(input, at)
                    if boundary == want { stack.append((pc + 1, slots)) }
                default:
                    list.pcs.append(Int32(pc))
                    if captures { list.slots.append(slots) }
                }
            }
        }

        var budget = self.budget
        addThread(&current, 0, emptySlots, 0, generation, &budget)
        while true {
            if budget <= 0 { return (.budgetExceeded, nil) }
            generation &+= 1
            next.pcs.removeAll(keepingCapacity: true)
            next.slots.removeAll(keepingCapacity: true)
            let (ch, width) = i < input.count ? Self.decode(input, i) : (UInt32.max, 0)
            var k = 0
            while k < current.pcs.count {
                let pc = Int(current.pcs[k])
                let slots = captures ? current.slots[k] : emptySlots
                k += 1
                budget -= 1
                var advance = false
                switch program[pc] {
                case .match:
                    if !captures { return (.match, nil) }
                    matched = slots
                    k = current.pcs.count  // lower-priority threads are cut off
                    continue
                case let inst: advance = width > 0 && inst.takes(ch, sets)
                }
                if advance { addThread(&next, pc + 1, slots, i + width, generation, &budget) }
            }
            if width == 0 { break }
            i += width
            // Unanchored search: a new attempt starts at every position until something matched.
            if matched == nil, !anchored { addThread(&next, 0, emptySlots, i, generation, &budget) }
            swap(&current, &next)
            if current.pcs.isEmpty, anchored { break }
            if current.pcs.isEmpty, matched != nil { break }
        }
        if let matched { return (.match, matched) }
        return (.noMatch, nil)
    }
}

// MARK: - Bounded backtracker

/// A backtracking matcher that remembers each (instruction, position) it has tried, so it never
/// tries one twice: linear in program × input like the Pike VM, but with no per-thread copies,
/// which makes it much faster on the short inputs it is used for. Used only when the visited
/// bitmap stays small; larger searches go to the Pike VM.
struct BitStateBacktracker {
    static let maxBits = 1 << 18

    let code: ByteRegex.Code
    let slotCount: Int
    let width: Int
    let words: Int
    static let greedyLoop: UInt8 = 1
    static let lazyLoop: UInt8 = 2

    /// Nil when the visit bitmap for this program and input would be too large.
    init?(_ code: ByteRegex.Code, inputCount: Int, slotCount: Int) {
        width = inputCount + 1
        let bits = code.shape.rowCount * width
        guard bits <= Self.maxBits else { return nil }
        self.code = code
        self.slotCount = slotCount
        words = (bits + 63) / 64
    }

    /// What the backtracker knows of a program before it runs.
    struct Shape: Sendable {
        /// What the search needs to know of one instruction, side by side for the three.
        struct Step: Sendable {
            /// Its row in the visit bitmap, or -1. Visits are marked only where a jump or split
            /// leads, and at the start. Any other instruction is reached only from the one before
            /// it, so it is explored at most once per position when that one is; every cycle
            /// passes through a marked instruction.
            var row: Int32 = -1
            /// `greedyLoop` or `lazyLoop` for the split of a star over one character test
            /// (`split; test; jump back`) whose body nothing else enters, else 0. `Search` runs
            /// such a loop in one place: its test and jump are reached only through its split,
            /// so marking the split's visits alone keeps every (instruction, position) explored
            /// once.
            var loop: UInt8 = 0
            /// The length of the run of one-byte tests (an ASCII scalar, or a letter either case)
            /// that starts here, when no jump or split leads into the run past its start, else 0.
            /// `Search` compares such a run with the input in one loop: each of its tests takes
            /// exactly one ASCII byte, and only the first needs a visit mark.
            var run: UInt8 = 0
        }

        /// One per instruction.
        let steps: [Step]
        let rowCount: Int

        init(_ program: [Inst]) {
            var entries = [Int](repeating: 0, count: program.count + 1)
            for inst in program {
                switch inst {
                case .jump(let t): entries[t] += 1
                case .split(let x, let y):
                    entries[x] += 1
                    entries[y] += 1
                default: break
                }
            }
            var steps = [Step](repeating: Step(), count: program.count)
            for pc in program.indices where pc + 2 < program.count {
                guard case .split(let x, let y) = program[pc], case .jump(let back) = program[pc + 2], back == pc,
                    entries[pc + 1] == 1, entries[pc + 2] == 0
                else { continue }
                switch program[pc + 1] {
                case .scalar, .scalarFold, .any, .set: break
                default: continue
                }
                if x == pc + 1 { steps[pc].loop = greedyLoop } else if y == pc + 1 { steps[pc].loop = lazyLoop }
            }
            var rowCount = 0
            for pc in program.indices where pc == 0 || entries[pc] > 0 {
                steps[pc].row = Int32(rowCount)
                rowCount += 1
            }
            func isByteTest(_ inst: Inst) -> Bool {
                switch inst {
                case .scalar(let v): v < 0x80
                case .scalarFold: true
                default: false
                }
            }
            for pc in program.indices.reversed() where isByteTest(program[pc]) {
                // The next instruction continues the run unless something jumps to it.
                let next = pc + 1 < program.count && entries[pc + 1] == 0 ? Int(steps[pc + 1].run) : 0
                steps[pc].run = UInt8(min(255, next + 1))
            }
            self.steps = steps
            self.rowCount = rowCount
        }
    }

    /// The groups of the leftmost-first match (each a byte range of `input`, nil when the
    /// group took no part), or nil.
    func run(_ input: UnsafeBufferPointer<UInt8>) -> [Range<Int>?]? {
        // Swift puts a temporary allocation on the stack only up to 1 KiB; a larger one is a
        // malloc. The first 64 jobs (1 KiB) fit; a search needing more moves them to the heap.
        // The bitmap fits for programs and lines of usual size.
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: words) { visited in
            visited.initialize(repeating: 0)
            return withUnsafeTemporaryAllocation(of: Int.self, capacity: max(1, slotCount)) { slots in
                slots.initialize(repeating: -1)
                return withUnsafeTemporaryAllocation(of: Job.self, capacity: 64) { firstJobs in
                    code.program.withUnsafeBufferPointer { program in
                        code.sets.withUnsafeBufferPointer { sets in
                            code.lookahead.withUnsafeBufferPointer { lookahead in
                                code.shape.steps.withUnsafeBufferPointer { steps in
                                    var search = Search(
                                        program: program, sets: sets, lookahead: lookahead, steps: steps, input: input, visited: visited,
                                        slots: slots, slotCount: slotCount, width: width, jobs: JobStack(firstJobs))
                                    defer { search.jobs.release() }
                                    let last = code.anchoredAtStart ? 0 : input.count
                                    let firstBytes = code.anchoredAtStart ? nil : code.firstBytes
                                    var start = 0
                                    while start <= last {
                                        if let firstBytes {
                                            // Skip to the next position where a match can begin (an ASCII
                                            // byte, so never inside a character).
                                            while start < input.count, !firstBytes.contains(input[start]) { start += 1 }
                                            if start >= input.count { return nil }
                                        }
                                        if search.tryAt(start) { return ByteRegex.groups(slots, count: slotCount / 2) }
                                        if start < input.count { start += PikeVM.decode(input, start).1 } else { break }
                                    }
                                    return nil
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// A backtrack point: resume at `pc` and `at`, or (restoreSlot >= 0) put a capture slot back.
    struct Job {
        var pc: Int32
        var at: Int32
        var restoreSlot: Int32
        var restoreValue: Int32

        /// Resume at `pc` and `at`.
        static func resume(_ pc: Int, _ at: Int) -> Job { Job(pc: Int32(pc), at: Int32(at), restoreSlot: -1, restoreValue: 0) }
    }

    /// The pending jobs: in the caller's stack memory, moved to the heap if they outgrow it.
    struct JobStack {
        private var base: UnsafeMutablePointer<Job>
        private var capacity: Int
        private(set) var count = 0
        private var onHeap = false

        init(_ initial: UnsafeMutableBufferPointer<Job>) {
            base = initial.baseAddress!
            capacity = initial.count
        }

        @inline(__always)
        mutating func push(_ job: Job) {
            if count == capacity { grow() }
            (base + count).initialize(to: job)
            count += 1
        }

        @inline(__always)
        mutating func pop() -> Job? {
            guard count > 0 else { return nil }
            count -= 1
            return base[count]
        }

        mutating func removeAll() { count = 0 }

        private mutating func grow() {
            let bigger = UnsafeMutablePointer<Job>.allocate(capacity: capacity * 2)
            bigger.initialize(from: base, count: count)
            if onHeap { base.deallocate() }
            base = bigger
            capacity *= 2
            onHeap = true
        }

        /// Frees the heap copy, if any; the stack is not used again.
        mutating func release() {
            if onHeap { base.deallocate() }
            onHeap = false
        }
    }

    /// One search's state, over borrowed buffers: no reference counting or uniqueness checks
    /// on the per-step path.
    struct Search {
        let program: UnsafeBufferPointer<Inst>
        let sets: UnsafeBufferPointer<CharSet>
        /// Empty: no lookahead for this program.
        let lookahead: UnsafeBufferPointer<ByteRegex.Lookahead>
        let steps: UnsafeBufferPointer<Shape.Step>
        let input: UnsafeBufferPointer<UInt8>
        let visited: UnsafeMutableBufferPointer<UInt64>
        let slots: UnsafeMutableBufferPointer<Int>
        let slotCount: Int
        let width: Int
        var jobs: JobStack

        /// Marks (`pc`, `at`) visited; false when it already was (never for an instruction
        /// without a row: see `Shape.Step.row`).
        @inline(__always)
        func firstVisit(_ pc: Int, _ at: Int) -> Bool {
            let row = Int(steps[pc].row)
            return row < 0 || firstVisit(bit: row &* width &+ at)
        }

        /// Marks bit `bit` of the visit bitmap; false when it already was.
        @inline(__always)
        func firstVisit(bit: Int) -> Bool {
            let mask: UInt64 = 1 << UInt64(bit & 63)
            if visited[bit >> 6] & mask != 0 { return false }
            visited[bit >> 6] |= mask
            return true
        }

        /// The width of the character at `at` if the one-character test at `pc` takes it, else 0.
        /// An ASCII byte is looked up in the test's lookahead, which holds exactly the ASCII
        /// bytes it takes; other bytes are decoded.
        @inline(__always)
        func taken(_ pc: Int, _ at: Int) -> Int {
            guard at < input.count else { return 0 }
            let byte = input[at]
            if byte < 0x80, !lookahead.isEmpty { return lookahead[pc].bytes.contains(byte) ? 1 : 0 }
            return Self.decodedWidth(program, sets, input, pc, at)
        }

        /// `taken` for a byte the lookahead does not settle: decodes the character. Kept out of
        /// line, so that `taken` stays small enough to be inlined where the search steps.
        @inline(never)
        static func decodedWidth(
            _ program: UnsafeBufferPointer<Inst>, _ sets: UnsafeBufferPointer<CharSet>, _ input: UnsafeBufferPointer<UInt8>, _ pc: Int,
            _ at: Int
        ) -> Int {
            let (ch, w) = PikeVM.decode(input, at)
            return program[pc].takes(ch, sets) ? w : 0
        }

        /// False when a match cannot go on from instruction `pc` at `at`: the next byte (or the
        /// end of input) is none it can continue with.
        @inline(__always)
        func canEnter(_ pc: Int, _ at: Int) -> Bool {
            guard !lookahead.isEmpty else { return true }
            return at < input.count ? lookahead[pc].bytes.contains(input[at]) : lookahead[pc].atEnd
        }

        mutating func tryAt(_ start: Int) -> Bool {
            jobs.removeAll()
            jobs.push(.resume(0, start))
            while let job = jobs.pop() {
                if job.restoreSlot >= 0 {
                    slots[Int(job.restoreSlot)] = Int(job.restoreValue)
                    continue
                }
                var pc = Int(job.pc)
                var at = Int(job.at)
                thread: while firstVisit(pc, at) {
                    switch program[pc] {
                    case .match:
                        return true
                    case .jump(let t):
                        pc = t
                        continue
                    case .split(let a, let b) where steps[pc].loop != 0:
                        // A star over one character test, run here: the same choices as the steps
                        // below, without a dispatch and a visit mark for its test and its jump.
                        let greedy = steps[pc].loop == BitStateBacktracker.greedyLoop
                        let body = greedy ? a : b
                        let exit = greedy ? b : a
                        // A loop's split is a jump target, so it has a row.
                        let rowStart = Int(steps[pc].row) &* width
                        if !lookahead.isEmpty {
                            // A run of ASCII bytes that the body takes and the exit cannot begin
                            // with: for each, the steps below queue nothing and move on one byte.
                            // Taken here with one test per byte.
                            let (bodyLow, bodyHigh) = lookahead[body].bytes.ascii
                            let (exitLow, exitHigh) = lookahead[exit].bytes.ascii
                            let runLow = bodyLow & ~exitLow
                            let runHigh = bodyHigh & ~exitHigh
                            while at < input.count {
                                let b = input[at]
                                let word = b < 64 ? runLow : b < 128 ? runHigh : 0
                                guard word >> UInt64(b & 63) & 1 != 0 else { break }
                                at &+= 1
                                guard firstVisit(bit: rowStart &+ at) else { break thread }
                            }
                        }
                        while true {
                            let step = taken(body, at)
                            if greedy {
                                if step == 0 {
                                    pc = exit
                                    continue thread
                                }
                                if canEnter(exit, at) { jobs.push(.resume(exit, at)) }
                            } else if canEnter(exit, at) {
                                if step > 0 { jobs.push(.resume(body, at)) }
                                pc = exit
                                continue thread
                            } else if step == 0 {
                                break thread
                            }
                            at &+= step
                            // Back at the split.
                            guard firstVisit(bit: rowStart &+ at) else { break thread }
                        }
                    case .split(let a, let b):
                        // A branch the next byte rules out (see `lookahead`) is neither taken nor
                        // queued: in `.*? from`, most positions fail on the literal at once.
                        if !canEnter(a, at) {
                            pc = b
                            continue
                        }
                        if canEnter(b, at) { jobs.push(.resume(b, at)) }
                        pc = a
                        continue
                    case .save(let k):
                        if k < slotCount {
                            jobs.push(Job(pc: 0, at: 0, restoreSlot: Int32(k), restoreValue: Int32(slots[k])))
                            slots[k] = at
                        }
                        pc &+= 1
                        continue
                    case .assertStart(let m):
                        guard at == 0 || (m && input[at - 1] == 10) else { break }
                        pc &+= 1
                        continue
                    case .assertEnd(let m):
                        guard at == input.count || (m && input[at] == 10) else { break }
                        pc &+= 1
                        continue
                    case .assertWord(let want):
                        guard (PikeVM.isWord(input, at - 1) != PikeVM.isWord(input, at)) == want else { break }
                        pc &+= 1
                        continue
                    default:
                        // A run of one-byte tests (a literal), compared in one loop. A scalar
                        // test's lookahead holds exactly its byte, a folded letter's both cases.
                        let run = Int(steps[pc].run)
                        if run > 1, !lookahead.isEmpty {
                            guard at &+ run <= input.count else { break }
                            var k = 0
                            while k < run, lookahead[pc &+ k].bytes.contains(input[at &+ k]) { k &+= 1 }
                            guard k == run else { break }
                            at &+= run
                            pc &+= run
                            continue
                        }
                        // A one-character test (the rest were handled above).
                        let step = taken(pc, at)
                        guard step > 0 else { break }
                        at &+= step
                        pc &+= 1
                        continue
                    }
                    break
                }
            }
            return false
        }
    }
}
