import EventModel
import Foundation
import Sigma
import TestSupport
import Testing

/// Conformance tables derived from the Sigma v2.1 specification and pySigma's semantics.
struct ConformanceTests {
    struct Case: Sendable, CustomStringConvertible {
        var detection: String
        var event: [(String, String)]
        var expected: Bool
        var description: String {
            "\(detection.replacingOccurrences(of: "\n", with: " ⏎ ")) on \(event.map { "\($0.0)=\($0.1)" }) → \(expected)"
        }
    }

    static func evaluate(_ detection: String, _ fields: [(String, String)]) throws -> Bool {
        let yaml = """
            title: conformance
            id: conformance-rule
            logsource: {product: linux}
            detection:
            \(detection.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
            level: low
            """
        let (set, report) = try Fixtures.ruleSet(yaml)
        guard report.errors.isEmpty else { throw RuleLoadFailure(errors: report.errors.map(\.description)) }
        var ev = EventFields()
        for (k, v) in fields { ev.add(k, v) }
        var event = Event(position: SourcePosition(source: "t", line: 1, offset: 0), fields: ev)
        var context = RuleSet.Context()
        return !set.match(&event, context: &context).isEmpty
    }

    struct RuleLoadFailure: Error { var errors: [String] }

    static let modifiers: [Case] = [
        // plain equality: anchored and case-insensitive
        Case(detection: "sel: {F: 'abc'}\ncondition: sel", event: [("F", "ABC")], expected: true),
        Case(detection: "sel: {F: 'abc'}\ncondition: sel", event: [("F", "xabc")], expected: false),
        // wildcards and escapes
        Case(detection: "sel: {F: 'a*c'}\ncondition: sel", event: [("F", "abbbc")], expected: true),
        Case(detection: "sel: {F: 'a?c'}\ncondition: sel", event: [("F", "abc")], expected: true),
        Case(detection: "sel: {F: 'a?c'}\ncondition: sel", event: [("F", "ac")], expected: false),
        Case(detection: "sel: {F: '*ab?d'}\ncondition: sel", event: [("F", "abxcabyd")], expected: true),
        Case(detection: "sel: {F: 'a\\*c'}\ncondition: sel", event: [("F", "a*c")], expected: true),
        Case(detection: "sel: {F: 'a\\*c'}\ncondition: sel", event: [("F", "abc")], expected: false),
        Case(detection: "sel: {F: 'C:\\Windows\\'}\ncondition: sel", event: [("F", "c:\\windows\\")], expected: true),
        Case(detection: "sel: {F: 'a\\\\*'}\ncondition: sel", event: [("F", "a\\xyz")], expected: true),
        Case(detection: "sel: {F: '?'}\ncondition: sel", event: [("F", "é")], expected: true),
        // contains / startswith / endswith / all
        Case(detection: "sel: {F|contains: 'bc'}\ncondition: sel", event: [("F", "ABCD")], expected: true),
        Case(detection: "sel: {F|startswith: 'ab'}\ncondition: sel", event: [("F", "abz")], expected: true),
        Case(detection: "sel: {F|startswith: 'ab'}\ncondition: sel", event: [("F", "zab")], expected: false),
        Case(detection: "sel: {F|endswith: '/curl'}\ncondition: sel", event: [("F", "/usr/bin/curl")], expected: true),
        Case(detection: "sel: {F|contains|all: ['a', 'z']}\ncondition: sel", event: [("F", "a..z")], expected: true),
        Case(detection: "sel: {F|contains|all: ['a', 'z']}\ncondition: sel", event: [("F", "a..y")], expected: false),
        Case(detection: "sel: {F|contains: ['x', 'y']}\ncondition: sel", event: [("F", "..y")], expected: true),
        // cased
        Case(detection: "sel: {F|cased: 'Abc'}\ncondition: sel", event: [("F", "abc")], expected: false),
        Case(detection: "sel: {F|contains|cased: 'Abc'}\ncondition: sel", event: [("F", "xAbcx")], expected: true),
        // Unicode case folding
        Case(detection: "sel: {F: 'ärger'}\ncondition: sel", event: [("F", "ÄRGER")], expected: true),
        Case(detection: "sel: {F|contains: 'straße'}\ncondition: sel", event: [("F", "DIE STRASSE")], expected: false),
        Case(detection: "sel: {F|contains: 'kernel'}\ncondition: sel", event: [("F", "\u{212A}ERNEL")], expected: true),
        // exists, null, empty
        Case(detection: "sel: {F|exists: true}\ncondition: sel", event: [("F", "")], expected: true),
        Case(detection: "sel: {F|exists: true}\ncondition: sel", event: [("G", "x")], expected: false),
        Case(detection: "sel: {F|exists: false}\ncondition: sel", event: [("G", "x")], expected: true),
        Case(detection: "sel: {F: null}\ncondition: sel", event: [("G", "x")], expected: true),
        Case(detection: "sel: {F: null}\ncondition: sel", event: [("F", "x")], expected: false),
        Case(detection: "sel: {F: ''}\ncondition: sel", event: [("F", "")], expected: true),
        Case(detection: "sel: {F: ''}\ncondition: sel", event: [("G", "")], expected: false),
        // neq
        Case(detection: "sel: {F|neq: ['a', 'b']}\ncondition: sel", event: [("F", "c")], expected: true),
        Case(detection: "sel: {F|neq: ['a', 'b']}\ncondition: sel", event: [("F", "b")], expected: false),
        // re with flags; unanchored search
        Case(detection: "sel: {F|re: '-D'}\ncondition: sel", event: [("F", "ssh -D 1080")], expected: true),
        Case(detection: "sel: {F|re: '^abc$'}\ncondition: sel", event: [("F", "ABC")], expected: false),
        Case(detection: "sel: {F|re|i: '^abc$'}\ncondition: sel", event: [("F", "ABC")], expected: true),
        Case(detection: "sel: {F|re|m: '^b$'}\ncondition: sel", event: [("F", "a\nb\nc")], expected: true),
        Case(detection: "sel: {F|re: 'a.c'}\ncondition: sel", event: [("F", "a\nc")], expected: false),
        Case(detection: "sel: {F|re|s: 'a.c'}\ncondition: sel", event: [("F", "a\nc")], expected: true),
        Case(
            detection: "sel: {F|re: '(?i)/lib/python3\\.([5-9]|[0-9]{2})/site-packages/'}\ncondition: sel",
            event: [("F", "/LIB/python3.11/site-packages/x")], expected: true),
        Case(detection: "sel: {F|re: '[^/]{10,}$'}\ncondition: sel", event: [("F", "/a/bbbbbbbbbbbb")], expected: true),
        // cidr
        Case(detection: "sel: {F|cidr: '10.0.0.0/8'}\ncondition: sel", event: [("F", "10.2.3.4")], expected: true),
        Case(detection: "sel: {F|cidr: '10.0.0.0/8'}\ncondition: sel", event: [("F", "11.2.3.4")], expected: false),
        Case(detection: "sel: {F|cidr: '2001:db8::/32'}\ncondition: sel", event: [("F", "2001:db8:1::5")], expected: true),
        Case(detection: "sel: {F|cidr: '192.168.0.0/16'}\ncondition: sel", event: [("F", "::ffff:192.168.1.1")], expected: true),
        // numbers and comparisons
        Case(detection: "sel: {F: 33}\ncondition: sel", event: [("F", "33")], expected: true),
        Case(detection: "sel: {F: 33}\ncondition: sel", event: [("F", "033")], expected: true),
        Case(detection: "sel: {F|gt: 10}\ncondition: sel", event: [("F", "11")], expected: true),
        Case(detection: "sel: {F|gte: 10}\ncondition: sel", event: [("F", "10")], expected: true),
        Case(detection: "sel: {F|lt: 10}\ncondition: sel", event: [("F", "10")], expected: false),
        Case(detection: "sel: {F|lte: 10}\ncondition: sel", event: [("F", "abc")], expected: false),
        Case(detection: "sel: {F: true}\ncondition: sel", event: [("F", "True")], expected: true),
        // fieldref
        Case(detection: "sel: {F|fieldref: G}\ncondition: sel", event: [("F", "same"), ("G", "SAME")], expected: true),
        Case(detection: "sel: {F|fieldref|endswith: G}\ncondition: sel", event: [("F", "/tmp/x"), ("G", "x")], expected: true),
        Case(detection: "sel: {F|fieldref: G}\ncondition: sel", event: [("F", "a"), ("G", "b")], expected: false),
        // encodings
        Case(detection: "sel: {F|base64: 'http'}\ncondition: sel", event: [("F", "aHR0cA==")], expected: true),
        Case(detection: "sel: {F|base64offset|contains: 'http'}\ncondition: sel", event: [("F", "xxodHRwOi8v")], expected: true),
        Case(detection: "sel: {F|base64offset|contains: 'http'}\ncondition: sel", event: [("F", "Zmh0dHA6")], expected: true),
        Case(detection: "sel: {F|wide|base64offset|contains: 'ab'}\ncondition: sel", event: [("F", "YQBiAA==")], expected: true),
        Case(detection: "sel: {F|windash|contains: ' -exec '}\ncondition: sel", event: [("F", "find / /exec x")], expected: true),
        Case(detection: "sel: {F|windash|contains: ' -exec '}\ncondition: sel", event: [("F", "find / \u{2013}exec x")], expected: true),
        // time parts
        Case(detection: "sel: {F|hour: 14}\ncondition: sel", event: [("F", "2024-05-01T14:30:00Z")], expected: true),
        Case(detection: "sel: {F|month: 5}\ncondition: sel", event: [("F", "2024-05-01T14:30:00Z")], expected: true),
        Case(detection: "sel: {F|week: 1}\ncondition: sel", event: [("F", "2024-01-01T00:00:00Z")], expected: true),
        // multi-valued fields match if any value does
        Case(detection: "sel: {F: 'b'}\ncondition: sel", event: [("F", "a"), ("F", "b")], expected: true),
        // keywords: unanchored, case-insensitive, over MESSAGE only
        Case(
            detection: "keywords: ['Corrupted MAC on input']\ncondition: keywords", event: [("MESSAGE", "x: corrupted mac on input.")],
            expected: true),
        Case(
            detection: "keywords: ['Trojan*FOUND']\ncondition: keywords", event: [("MESSAGE", "/tmp/x: Trojan.Foo FOUND")], expected: true),
        Case(detection: "keywords: ['needle']\ncondition: keywords", event: [("OTHER", "needle")], expected: false),
        Case(
            detection: "keywords:\n    '|all': ['pkexec', 'XAUTHORITY']\ncondition: keywords",
            event: [("MESSAGE", "pkexec: XAUTHORITY bad")], expected: true),
        Case(
            detection: "keywords:\n    '|all': ['pkexec', 'XAUTHORITY']\ncondition: keywords", event: [("MESSAGE", "pkexec only")],
            expected: false),
        // lists of maps are OR, maps are AND
        Case(detection: "sel:\n    - {F: a, G: b}\n    - {F: c}\ncondition: sel", event: [("F", "a"), ("G", "x")], expected: false),
        Case(detection: "sel:\n    - {F: a, G: b}\n    - {F: c}\ncondition: sel", event: [("F", "c")], expected: true),
    ]

    @Test(arguments: modifiers)
    func modifierSemantics(_ c: Case) throws {
        #expect(try Self.evaluate(c.detection, c.event) == c.expected)
    }

    static let grammar: [Case] = [
        Case(detection: "a: {F: x}\nb: {G: y}\ncondition: a and b", event: [("F", "x"), ("G", "y")], expected: true),
        Case(detection: "a: {F: x}\nb: {G: y}\ncondition: a and b", event: [("F", "x")], expected: false),
        Case(detection: "a: {F: x}\nb: {G: y}\ncondition: a or b", event: [("G", "y")], expected: true),
        Case(detection: "a: {F: x}\nb: {G: y}\ncondition: a and not b", event: [("F", "x")], expected: true),
        Case(detection: "a: {F: x}\nb: {G: y}\ncondition: not a", event: [("G", "y")], expected: true),
        Case(detection: "a: {F: x}\nb: {G: y}\nc: {H: z}\ncondition: a or b and c", event: [("F", "x")], expected: true),
        Case(detection: "a: {F: x}\nb: {G: y}\nc: {H: z}\ncondition: (a or b) and c", event: [("F", "x")], expected: false),
        Case(detection: "a: {F: x}\nb: {G: y}\ncondition: not a and b", event: [("G", "y")], expected: true),
        Case(detection: "sel_a: {F: x}\nsel_b: {G: y}\ncondition: 1 of sel_*", event: [("G", "y")], expected: true),
        Case(detection: "sel_a: {F: x}\nsel_b: {G: y}\ncondition: all of sel_*", event: [("G", "y")], expected: false),
        Case(detection: "sel_a: {F: x}\nsel_b: {G: y}\ncondition: any of sel_*", event: [("F", "x")], expected: true),
        Case(detection: "sel_a: {F: x}\nsel_b: {G: y}\ncondition: all of them", event: [("F", "x"), ("G", "y")], expected: true),
        Case(detection: "a: {F: x}\n_hidden: {G: y}\ncondition: 1 of them", event: [("G", "y")], expected: false),
        Case(
            detection: "a: {F: x}\nnot_filter: {G: y}\ncondition: a and not not_filter", event: [("F", "x"), ("G", "y")], expected: false),
        Case(detection: "a: {F: x}\nb: {G: y}\ncondition: [a, b]", event: [("G", "y")], expected: true),
        Case(detection: "sel: {F: x}\nfilter: {G: y}\ncondition: sel and not 1 of filter*", event: [("F", "x")], expected: true),
    ]

    @Test(arguments: grammar)
    func conditionGrammar(_ c: Case) throws {
        #expect(try Self.evaluate(c.detection, c.event) == c.expected)
    }

    static let rejected: [(String, String)] = [
        ("sel: {F: x}\ncondition: sel | count() by G > 5", "obsolete"),
        ("sel: {F: x}\ncondition: sel and missing", "not a search identifier"),
        ("sel: {F: x}\ncondition: 1 of nothing*", "matches no search identifier"),
        ("sel: {F|nosuch: x}\ncondition: sel", "unknown modifier"),
        ("sel: {F|re: '(unclosed'}\ncondition: sel", "bad regular expression"),
        ("sel: {F|contains|re: 'x'}\ncondition: sel", "must come first"),
        ("sel: {F|cidr: 'nonsense'}\ncondition: sel", "bad CIDR"),
        ("sel: {F|exists: maybe}\ncondition: sel", "'exists' takes true or false"),
        ("sel: {F: [a, null]}\ncondition: sel", "null may not be mixed"),
        ("sel: {F|expand: '%var%'}\ncondition: sel", "placeholder"),
        ("sel: {F: x}\ntimeframe: 5m\ncondition: sel", "timeframe"),
        ("sel: {F: x}", "no 'condition'"),
        ("sel: {F: x}\ncondition: sel and", "ends early"),
        ("sel: {F|re: '(?=x)'}\ncondition: sel", "lookahead"),
    ]

    @Test(arguments: 0..<rejected.count)
    func invalidRulesAreRejectedWithLocation(_ i: Int) throws {
        let (detection, reason) = Self.rejected[i]
        let yaml =
            "title: bad\nid: bad-rule\nlogsource: {product: linux}\ndetection:\n"
            + detection.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n") + "\n"
        let (set, report) = try Fixtures.ruleSet(yaml)
        #expect(set.rules.isEmpty)
        #expect(report.rejected == 1)
        let e = try #require(report.errors.first)
        #expect(e.message.contains(reason), "\(e.message)")
        #expect(e.location.line >= 1)
    }

    /// What a journal source may filter on: exactly the routes the loaded rules use.
    @Test func sourceMatchesFollowTheRulesRoutes() throws {
        let sudo =
            "title: s\nid: s1\nlogsource: {product: linux, service: sudo}\ndetection:\n    s: {MESSAGE|contains: 'NOT in sudoers'}\n    condition: s\n"
        let (set, _) = try Fixtures.ruleSet(sudo)
        let groups = try #require(set.sourceMatches()).map { $0.map { "\($0.field)=\($0.value)" } }
        #expect(groups == [["SYSLOG_IDENTIFIER=sudo"], ["_COMM=sudo"]])
        // A rule for every Linux event: nothing may be filtered out.
        let generic = "title: g\nid: g1\nlogsource: {product: linux}\ndetection:\n    keywords: ['rootkit']\n    condition: keywords\n"
        #expect(try Fixtures.ruleSet(generic).0.sourceMatches() == nil)
        // Wildcards cannot become exact matches: nothing filtered either.
        let sshd =
            "title: h\nid: h1\nlogsource: {product: linux, service: sshd}\ndetection:\n    s: {MESSAGE|contains: 'x'}\n    condition: s\n"
        #expect(try Fixtures.ruleSet(sshd).0.sourceMatches() == nil)
        // Audit rules read the audit transport; process_creation events are made by logtriage
        // from those records, so a journal match on their category would select nothing.
        let auditd = "title: a\nid: a1\nlogsource: {product: linux, service: auditd}\ndetection:\n    s: {type: EXECVE}\n    condition: s\n"
        let auditGroups = try #require(try Fixtures.ruleSet(auditd).0.sourceMatches()).map { $0.map { "\($0.field)=\($0.value)" } }
        #expect(auditGroups == [["_TRANSPORT=audit"]])
        let process =
            "title: p\nid: p1\nlogsource: {product: linux, category: process_creation}\ndetection:\n    s: {Image|endswith: '/id'}\n    condition: s\n"
        #expect(try Fixtures.ruleSet(process).0.sourceMatches() == nil)
    }

    @Test func categoryRulesSeeOnlyTheirCategory() throws {
        let yaml =
            "title: f\nid: f1\nlogsource: {product: linux, category: file_event}\ndetection:\n    s: {TargetFilename|endswith: '.so'}\n    condition: s\n"
        let (set, report) = try Fixtures.ruleSet(yaml)
        #expect(report.errors.isEmpty)
        var context = RuleSet.Context()
        var plain = Event(position: SourcePosition(source: "t", line: 1, offset: 0))
        plain.fields.add("TargetFilename", "/tmp/x.so")
        #expect(set.match(&plain, context: &context).isEmpty)
        var tagged = plain
        tagged.fields.add("EVENT_CATEGORY", "file_event")
        #expect(set.match(&tagged, context: &context) == [0])
    }

    /// Plans are cached by a hash of the fields routes test, in a table of 1,024 slots. With
    /// far more kinds of line than slots, other programs share sshd's slot; each line must still
    /// get its own routes.
    @Test func planCacheKeepsKindsOfLineApartPastItsSlots() throws {
        let yaml =
            "title: h\nid: h1\nlogsource: {product: linux, service: sshd}\ndetection:\n    s: {MESSAGE|contains: 'Failed password'}\n    condition: s\n"
        let (set, report) = try Fixtures.ruleSet(yaml)
        #expect(report.errors.isEmpty)
        var context = RuleSet.Context()
        var wrong = 0
        for k in 0..<10_000 {
            // Same text, but only sshd's line is routed to the sshd rule.
            var other = Fixtures.syslog("Mar  1 10:00:00 h prog\(k)[1]: Failed password for root from 10.0.0.5 port 22 ssh2")
            if !set.match(&other, context: &context).isEmpty { wrong += 1 }
            var sshd = Fixtures.syslog("Mar  1 10:00:00 h sshd[1]: Failed password for root from 10.0.0.5 port 22 ssh2")
            if set.match(&sshd, context: &context) != [0] { wrong += 1 }
        }
        #expect(wrong == 0)
    }

    @Test func metaFilterExcludesFromReferencedRules() throws {
        let yaml = """
            title: failed login
            id: base-1
            name: failed_login
            logsource: {product: linux, service: sshd}
            detection:
                s: {MESSAGE|contains: 'Failed password'}
                condition: s
            ---
            title: our scanner
            id: filter-1
            logsource: {product: linux, service: sshd}
            filter:
                rules: [failed_login]
                selection: {MESSAGE|contains: 'from 10.0.0.5 '}
                condition: selection
            """
        let (set, report) = try Fixtures.ruleSet(yaml)
        #expect(report.errors.isEmpty, "\(report.errors)")
        #expect(report.loaded == 2)
        var context = RuleSet.Context()
        var scanner = Fixtures.syslog("Mar  1 10:00:00 h sshd[1]: Failed password for root from 10.0.0.5 port 22 ssh2")
        var attacker = Fixtures.syslog("Mar  1 10:00:00 h sshd[1]: Failed password for root from 203.0.113.5 port 22 ssh2")
        #expect(set.match(&scanner, context: &context).isEmpty)
        #expect(set.match(&attacker, context: &context) == [0])
    }

    @Test func unroutableLogsourceIsRejected() throws {
        let (_, report) = try Fixtures.ruleSet(
            "title: w\nid: w1\nlogsource: {product: windows, service: security}\ndetection:\n    s: {EventID: 4625}\n    condition: s\n")
        #expect(report.rejected == 1)
        #expect(report.errors.first?.message.contains("no pipeline route") == true)
    }
}

struct ByteRegexTests {
    static let table: [(String, String, Bool)] = [
        ("abc", "xxabcxx", true), ("^abc", "xabc", false), ("a|b", "b", true), ("a{2,3}", "aa", true),
        ("^a{2,3}$", "aaaa", false), ("\\d+\\.\\d+", "v1.25", true), ("\\bfoo\\b", "a foo b", true), ("\\bfoo\\b", "afoob", false),
        ("[^a-c]", "abc", false), ("[\\w-]+@x", "a-b@x", true), ("(?:ab)+$", "ababab", true), ("a.*?b", "aXXb", true),
        ("\\s-[FTd]\\s", "ls -d x", true), ("(^|\\/)\\.[^.\\/]", "/home/.hidden", true), ("é", "café", true), ("caf.$", "café", true),
        ("[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}", "to 10.0.0.1 now", true),
        // Searches start only where a match can begin: alternatives, optional and repeated
        // prefixes, case folding, classes, anchors and non-ASCII starts.
        ("(?:Failed|Accepted) \\S+ for", "sshd: Accepted key for", true), ("(?i)(?:failed|accepted) x", "a ACCEPTED x", true),
        ("(?:ab|cd)?e", "zzcde", true), ("(?:ab|cd)?e", "zzcdx", false), ("a*b", "xxaab", true), ("[0-9]+x", "ab12x", true),
        ("(?m)^b", "a\nb", true), ("\\bfoo", "a foo", true), ("(?:x|é)t", "caét", true), ("[^a]b", "aab", false),
        ("\\Sb", "ébb", true), ("x?$", "abc", true),
        // Branches are skipped when the next byte cannot continue them: non-ASCII inside and
        // after loops, optional tails, ends of input and of lines, empty alternatives.
        ("a.*?b$", "aéb", true), ("é+?x", "ééx", true), ("(?i)fo+?X", "FOOx", true), ("a.*?é", "abcé", true),
        ("x\\S+?(?: p \\d+)?\\s*$", "x1.2.3 p 4", true), ("x\\S+?(?: p \\d+)?$", "x1.2.3 p", false),
        ("(?m)a$", "a\nb", true), ("a$", "a\nb", false), ("a(?:b|)$", "a", true), ("a(?:\\s*|z)$", "a  ", true),
        ("a\\b", "a b", true), ("a\\b", "ab", false), ("a(?:\\.|$)", "a", true), ("[^;]*? ;x", "ab ;x", true),
    ]

    @Test(arguments: 0..<table.count)
    func matches(_ i: Int) throws {
        let (p, s, want) = Self.table[i]
        #expect(try ByteRegex(p).matches(s) == want, "\(p) on \(s)")
    }

    @Test func pathologicalPatternStaysLinear() throws {
        // Catastrophic for a backtracking engine: (a*)*b over a long run of a's.
        let r = try ByteRegex("(a*)*b")
        let input = Array(repeating: UInt8(ascii: "a"), count: 20_000)
        let outcome = input.withUnsafeBufferPointer { r.search($0) }
        #expect(outcome != .match)
    }

    @Test func stepBudgetStopsHugeSearches() throws {
        let r = try ByteRegex("(.){200,}x", stepBudget: 100_000)
        let input = Array(repeating: UInt8(ascii: "a"), count: 100_000)
        #expect(input.withUnsafeBufferPointer { r.search($0) } == .budgetExceeded)
    }

    @Test func backtrackerAgreesWithPikeVM() throws {
        // Star loops over one character test run in one place in the backtracker; the Pike VM
        // steps through them. Same leftmost-first match and groups, on every input.
        let patterns = [
            "a(?<x>b*)c", "a(?<x>b*?)c", "(?<x>.*) (?<y>.*?)$", "(?<x>.*?) from (?<y>\\S+?)(?: port \\d+)?\\s*$",
            "^(?<x>[^:]*):(?<y>.*?)b*$", "(?<x>\\S+)\\s*(?<y>\\d*)", "(?<x>a*)(?<y>a*?)b", "x(?<x>[ab]*?)(?<y>b+)",
            "(?i)(?<x>A*)B", "(?<x>(?:ab)*)c", "(?s)(?<x>.*?)\\n(?<y>.*)", "^(?<x>(?:a|ab)*)c$",
            "from (?<x>[^ ]+) port", "(?i)FR(?<x>.)m", "é(?<x>\\S*?)b", "(?<x>[^a]+)é",
            // Loop bodies that overlap what follows them, and loops that start at a line's end.
            "(?<x>[a-f]*)(?<y>[c-z]+)", "(?<x>[a-f]*?)(?<y>[c-z]+)$", "(?<x>\\S*?)(?<y>\\.\\d*)?$",
            // Literals, folded and not, after loops that run over many bytes.
            "(?i)FROM (?<x>[^ ]*)(?: port (?<y>\\d+))?", "(?<x>[ab]*)from", "(?<x>a*) (?<y>\\S*?)ab$",
        ]
        // Non-ASCII and invalid bytes too: the backtracker decodes them, and looks ASCII bytes up.
        let alphabet = Array("ab: 1.\nxcfrompté".utf8) + [0xFF, 0xC3]
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(seed >> 33)
        }
        for p in patterns {
            let r = try ByteRegex(p)
            for k in 0..<400 {
                // Short inputs, and long ones made of runs: a loop then runs over many bytes, and
                // its visits span several words of the visit bitmap.
                let input =
                    k < 300
                    ? (0..<(next() % 24)).map { _ in alphabet[next() % alphabet.count] }
                    : (0..<(next() % 12)).flatMap { _ in
                        let piece = next() % 3 == 0 ? Array("from".utf8) : [alphabet[next() % alphabet.count]]
                        return Array([[UInt8]](repeating: piece, count: 1 + next() % 70).joined())
                    }
                let (fast, vm) = input.withUnsafeBufferPointer { (r.firstMatch($0), r.firstMatch($0, backtrack: false)) }
                #expect(fast == vm, "\(p) on \(String(decoding: input, as: UTF8.self).debugDescription)")
            }
        }
    }

    @Test func requiredLiteralsSkipAlternativesAndOptionalParts() throws {
        let cases: [(String, [String])] = [
            ("PAM: (?:User not known )?(?<u>.*?) from (?<a>\\S+)", [" from ", "pam: "]),
            ("(?:Failed|Accepted) \\S+ for (?:invalid user )?(?<u>.*?) from (?<a>\\S+)", [" from ", " for "]),
            ("^(?:error: )?Did not receive", ["did not receive"]),
            ("a(?:bc)+d|xyz", []),
            ("(?:abc)*x", []),
        ]
        for (pattern, want) in cases {
            let r = try ByteRegex(pattern)
            #expect(r.requiredLiterals == want.map { Array($0.utf8) }, "\(pattern)")
            #expect(r.requiredLiteral == want.first.map { Array($0.utf8) })
        }
    }

    @Test func backtrackingPastItsFirstJobs() throws {
        // Each "a" leaves a choice open (take "ab" instead, or leave the loop): hundreds of
        // pending choices, past what the search keeps on the stack.
        let r = try ByteRegex("^(?:a|ab)*(?<end>c)$")
        for (count, last, want) in [(300, "c", true), (300, "d", false), (63, "c", true), (65, "c", true)] {
            let s = Array((String(repeating: "a", count: count) + last).utf8)
            let groups = s.withUnsafeBufferPointer { r.firstMatch($0) }
            #expect((groups != nil) == want, "\(count) a's then \(last)")
            if let end = groups?[1] { #expect(end == count..<(count + 1)) }
        }
    }

    @Test func capturesAcrossLazyLoopsAndOptionalTails() throws {
        let r = try ByteRegex(
            "(?:Failed|Accepted) \\S+ for (?:invalid user )?(?<u>.*?) from (?<a>\\S+?)(?: port \\d+)?(?: ssh\\d?)?(?:: .*)?\\s*$")
        let cases = [
            ("Failed password for invalid user pi from 53.254.218.199 port 13367 ssh2", "pi", "53.254.218.199"),
            ("Accepted publickey for ünï from me from ::1 port 22 ssh2: ED25519 SHA256:x", "ünï from me", "::1"),
            ("Failed none for x from 10.0.0.1", "x", "10.0.0.1"),
        ]
        for (line, user, address) in cases {
            let s = Array(line.utf8)
            let groups = try #require(s.withUnsafeBufferPointer { r.firstMatch($0) }, "\(line)")
            #expect(String(decoding: s[groups[1]!], as: UTF8.self) == user, "\(line)")
            #expect(String(decoding: s[groups[2]!], as: UTF8.self) == address, "\(line)")
        }
        #expect(Array("Failed password for pi from 10.0.0.1 port x".utf8).withUnsafeBufferPointer { r.firstMatch($0) } == nil)
    }

    @Test func namedCapturesLeftmostFirst() throws {
        let r = try ByteRegex("ruser=(?<u>.*?) rhost=(?<h>\\S+)\\s*$")
        let s = Array("ruser=test rhost=192.0.2.151 rhost=192.0.2.1".utf8)
        let groups = try #require(s.withUnsafeBufferPointer { r.firstMatch($0) })
        #expect(String(decoding: s[groups[1]!], as: UTF8.self) == "test rhost=192.0.2.151")
        #expect(String(decoding: s[groups[2]!], as: UTF8.self) == "192.0.2.1")
    }
}

struct StringMatcherTests {
    /// `contains` looks for its first byte eight positions at a time: every position of every
    /// length, either case of letters, and look-alike bytes around them must still be right.
    @Test func containsAtEveryPosition() {
        let needles = ["fail", "Fail", " src=", "@x", "é-1"]
        let fillers: [UInt8] = [UInt8(ascii: "."), UInt8(ascii: "F"), UInt8(ascii: "@"), UInt8(ascii: "`"), 0xC3]
        for needle in needles {
            for caseSensitive in [false, true] {
                let matcher = StringMatcher(SigmaPattern(sigma: "*" + needle + "*"), caseSensitive: caseSensitive)
                for length in [needle.utf8.count, 7, 8, 9, 15, 16, 17, 31] where length >= needle.utf8.count {
                    for filler in fillers {
                        for at in 0...(length - needle.utf8.count) {
                            for variant in [needle, needle.uppercased()] {
                                var bytes = [UInt8](repeating: filler, count: length)
                                bytes.replaceSubrange(at..<(at + variant.utf8.count), with: Array(variant.utf8))
                                let text = String(decoding: bytes, as: UTF8.self)
                                let expected = caseSensitive ? text.contains(needle) : text.lowercased().contains(needle.lowercased())
                                #expect(matcher.matches(text) == expected, "\(needle) in \(text) (case sensitive: \(caseSensitive))")
                            }
                        }
                    }
                }
                // Absent needles are not found, whatever the bytes around them.
                #expect(!matcher.matches(String(repeating: "fai@`.", count: 9)))
            }
        }
    }
}

struct AhoCorasickTests {
    /// Every pattern a value contains is reported, in either case of the value's letters, for
    /// a small automaton and one past 65,536 states, in values walked in one, two and four
    /// interleaved walks (occurrences across the seams between walks included).
    @Test(arguments: [40, 12_000])
    func findsWhatNaiveSearchFinds(_ count: Int) {
        var rng = SplitMix(seed: UInt64(count))
        let alphabet = Array("abcdefgh -=.".utf8)
        let patterns = (0..<count).map { i in (0..<(i % 3 == 0 ? 3 : 12)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] } }
        let automaton = AhoCorasick(patterns: patterns)
        for round in 0..<200 {
            var text = (0..<(20 + round % 100)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            // Plant a few patterns, some in upper case.
            for k in 0..<(3 + text.count / 20) {
                let p = patterns[Int(rng.next() % UInt64(patterns.count))]
                let at = Int(rng.next() % UInt64(text.count - p.count))
                text.replaceSubrange(at..<(at + p.count), with: (round + k) % 2 == 0 ? p : p.map { $0 >= 97 && $0 <= 122 ? $0 - 32 : $0 })
            }
            var found = Set<Int32>()
            text.withUnsafeBufferPointer { automaton.scan($0) { found.insert($0) } }
            let lower = text.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
            // Every substring of the pattern lengths, so that each pattern is one lookup.
            var pieces = Set<[UInt8]>()
            for length in [3, 12] {
                for at in 0...(lower.count - length) { pieces.insert(Array(lower[at..<(at + length)])) }
            }
            let expected = Set(patterns.indices.filter { pieces.contains(patterns[$0]) }.map { Int32($0) })
            #expect(found == expected, "round \(round)")
        }
    }

    /// With a class limit (the rule prefilter's), the automaton reports every pattern a value
    /// holds, like the exact one, and only sometimes more: an alphabet of 43 bytes is walked
    /// with 32 classes, the rarest bytes of the patterns sharing one.
    @Test func classLimitNeverMissesAPattern() {
        var rng = SplitMix(seed: 7)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789 -=./:_".utf8)
        func pick() -> UInt8 { alphabet[Int(rng.next() % UInt64(alphabet.count))] }
        let patterns = (0..<300).map { i in (0..<(2 + i % 7)).map { _ in pick() } }
        let exact = AhoCorasick(patterns: patterns)
        let approximate = AhoCorasick(patterns: patterns, classLimit: 32)
        var extra = 0
        for round in 0..<300 {
            var text = (0..<(30 + round % 90)).map { _ in pick() }
            for _ in 0..<3 {
                let p = patterns[Int(rng.next() % UInt64(patterns.count))]
                let at = Int(rng.next() % UInt64(text.count - p.count))
                text.replaceSubrange(at..<(at + p.count), with: p)
            }
            var found = Set<Int32>()
            var reported = Set<Int32>()
            text.withUnsafeBufferPointer { t in
                exact.scan(t) { found.insert($0) }
                approximate.scan(t) { reported.insert($0) }
            }
            #expect(found.isSubset(of: reported), "round \(round)")
            extra += reported.subtracting(found).count
        }
        #expect(extra > 0, "the limit merged no classes")
    }

    /// A small deterministic generator, so that a failure can be replayed.
    struct SplitMix {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E4B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}

struct ExtractorTests {
    /// Extractors of a stage run in order, and each one's events are tested when its turn
    /// comes: a field an earlier extractor added can select a later one.
    @Test func laterExtractorsSeeEarlierFields() throws {
        let yaml = """
            extractors:
              - name: kind
                field: MESSAGE
                patterns: ['^(?<kind>\\w+):']
              - name: number
                events: {kind: [count]}
                field: MESSAGE
                patterns: ['n=(?<n>\\d+)']
            """
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("extractors-\(UUID().uuidString).yml").path
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        var pipeline = Pipeline()
        try pipeline.add(file: file)
        for (message, expected) in [("count: n=3", "3"), ("other: n=3", nil)] {
            var event = Event(position: SourcePosition(source: "t", line: 1, offset: 0))
            event.fields.add(FieldName.message, message)
            pipeline.extract(.finding, into: &event)
            #expect(event.string("n") == expected, "\(message)")
        }
    }

    /// Extractors of a matched event or a session event give the same fields whether the
    /// prefilter's pass over the event found their literals for them (their field is there as
    /// the event is matched) or they screen their field themselves (here `detail`, a field an
    /// earlier extractor adds, and every extractor when the stage is run on its own).
    @Test func extractorsGiveTheSameFieldsWithThePrefilterOrAlone() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("riding-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/pipelines", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
        session_events: {SYSLOG_IDENTIFIER: [app]}
        session_key: [SYSLOG_IDENTIFIER, _PID]
        session_fields: [source.address]
        routes:
          - logsource: {service: app}
            events:
              - SYSLOG_IDENTIFIER: [app]
        extractors:
          - name: who
            events: {SYSLOG_IDENTIFIER: [app]}
            field: MESSAGE
            patterns:
              - 'denied for (?<user.name>\\S+) from (?<source.address>\\S+)(?: \\[(?<detail>[^]]*)\\])?'
              - 'Refused (?<user.name>\\S+) at (?<source.address>\\S+)'
              - 'really long literal piece here (?<user.name>\\S+)'
          - name: detail
            field: detail
            patterns: ['code=(?<code>\\d+)']
          - name: hello
            stage: session
            events: {SYSLOG_IDENTIFIER: [app]}
            field: MESSAGE
            patterns: ['^hello from (?<source.address>\\S+)']
        """.write(toFile: dir + "/pipelines/app.yml", atomically: true, encoding: .utf8)
        try """
        title: app denial
        id: 4e0b6f0a-9d64-4f55-8a55-2b1f0c7e1a01
        logsource: {service: app}
        detection:
            selection:
                MESSAGE|contains: 'denied'
            other:
                MESSAGE|contains: 'Refused'
            long:
                MESSAGE|contains: 'LITERAL'
            condition: selection or other or long
        level: low
        """.write(toFile: dir + "/rule.yml", atomically: true, encoding: .utf8)
        var pipeline = Pipeline()
        try pipeline.add(file: dir + "/pipelines/app.yml")
        let (set, report) = RuleSet.load(paths: [dir + "/rule.yml"], pipeline: pipeline)
        #expect(report.rejected == 0 && set.rules.count == 1, "\(report.errors)")
        var context = RuleSet.Context()
        let messages = [
            "hello from 192.0.2.1", "access denied for alice from 192.0.2.7 [code=13]", "Access DENIED for bob from 192.0.2.8",
            "Refused carol at 192.0.2.9", "a really long literal piece here dave", "denied for erin", "nothing here",
            "denied for frank from 192.0.2.10 [no code]", "ünïcode denied for gina from 192.0.2.11 [code=7]",
        ]
        for (n, message) in messages.enumerated() {
            func event() -> Event {
                var e = Event(position: SourcePosition(source: "t", line: n + 1, offset: 0))
                e.fields.add(FieldName.identifier, "app")
                e.fields.add(FieldName.pid, "\(n)")
                e.fields.add(FieldName.message, message)
                return e
            }
            var matched = event()
            _ = set.evaluateInPlace(&matched, context: &context)
            // The rule matches these (a match that names no address is held back, not reported).
            let lower = message.lowercased()
            let isMatch = ["denied", "refused", "literal"].contains { lower.contains($0) }
            var alone = event()
            pipeline.extract(isMatch ? .finding : .session, into: &alone)
            for name in ["user.name", "source.address", "detail", "code"] {
                #expect(matched.string(name) == alone.string(name), "\(name) of \(message)")
            }
        }
        #expect(context.statistics.rulesEvaluated > 0)
    }

    /// An extractor screens its patterns by their literals with one automaton over its first 64
    /// literals (patterns past those are not screened): either way the first pattern that
    /// matches gives the fields.
    @Test(arguments: [3, 70])
    func firstMatchingPatternWins(_ count: Int) throws {
        let patterns = (0..<count).map { "      - 'code\($0)=(?<n>\\d+)'" }.joined(separator: "\n")
        let yaml = "extractors:\n  - name: codes\n    field: MESSAGE\n    patterns:\n" + patterns + "\n"
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("extractors-\(count)-\(UUID().uuidString).yml").path
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        var pipeline = Pipeline()
        try pipeline.add(file: file)
        for (message, expected) in [("a code\(count - 1)=42 b", "42"), ("code1=7 code0=9", "9"), ("code\(count)=5", nil)] {
            var event = Event(position: SourcePosition(source: "t", line: 1, offset: 0))
            event.fields.add(FieldName.message, message)
            pipeline.extract(.finding, into: &event)
            #expect(event.string("n") == expected, "\(message) with \(count) patterns")
        }
    }
}
