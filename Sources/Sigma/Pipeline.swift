import EventModel
import Foundation
import Yams

/// Logsource routing, field mapping and field extraction, loaded from pipeline YAML files.
///
/// A rule's `logsource` picks its route (see `route(for:)`); the route's event predicate decides
/// which events the rule sees. Field mappings rename Sigma fields to event fields. Extractors pull
/// fields out of message text: at the `detect` stage before rules run (fields rules test), at the
/// `finding` stage only for events that matched (observables), and at the `session` stage to
/// remember what a session showed (sshd's address) for its later lines.
package struct Pipeline: Sendable {
    package var routes: [Route] = []
    package var fieldMappings: [FieldMapping] = []
    /// Fields logtriage adds to events itself (no journal entry holds them), so a route that tests
    /// them cannot become a journal match.
    package var derivedFields: Set<String> = []
    package var extractors: [Extractor] = []
    package var keywordFields: [String] = [FieldName.message]
    package var files: [String] = []

    package init() {}

    package struct Route: Sendable {
        package var logsource: [String: String]
        package var events: EventPredicate
        package var location: SourceLocation
    }

    package struct FieldMapping: Sendable {
        package var logsource: [String: String]
        package var fields: [String: [String]]
    }

    package enum Stage: String, Sendable {
        case detect
        case finding
        /// Remembers fields per session (see `sessionKey`) for later lines of the same session.
        case session
    }

    /// Fields that identify one session of a program (sshd logs one connection per pid).
    package var sessionKey: [String] = [FieldName.hostname, FieldName.identifier, FieldName.pid]
    /// Fields a later line of a session inherits when it lacks them.
    package var sessionFields: [String] = ["source.address", "user.name"]
    /// Events that belong to sessions (`session_events`); none by default.
    package var sessionEvents = EventPredicate(anyEvent: false, conditions: [])

    package struct Extractor: Sendable {
        package var name: String
        package var stage: Stage
        package var events: EventPredicate
        package var field: String
        package let patterns: [ByteRegex]
        /// Only the first `maxInputBytes` of the field are searched.
        package var maxInputBytes: Int
        /// Which patterns can match a value, judged by their required literals.
        let screen: LiteralScreen

        init(name: String, stage: Stage, events: EventPredicate, field: String, patterns: [ByteRegex], maxInputBytes: Int) {
            self.name = name
            self.stage = stage
            self.events = events
            self.field = field
            self.patterns = patterns
            self.maxInputBytes = maxInputBytes
            screen = LiteralScreen(patterns: patterns)
        }
    }

    /// Which of an extractor's patterns can match a value, judged by the literals they require
    /// (every literal run a pattern's matches must contain, not only the longest): with one
    /// automaton over the literals (one pass over the value for all patterns) when there are
    /// two or more, else with a search for the one literal. Literals are screened by their
    /// first `AhoCorasick.screenLength` bytes, so that the automaton can walk a value in parts;
    /// a pattern with a longer literal is then not told its literal was found (`exact`).
    /// A class: an extractor's screen is read for every event it runs on, and a reference
    /// costs one count where a struct of arrays costs one per array.
    final class LiteralScreen: Sendable {
        private let literals: [[UInt8]]
        /// Per pattern, the bits of the literals it requires (bit k: `literals[k]`).
        private let required: [UInt64]
        /// Per pattern: all its literals are whole pieces, so passing the screen means they
        /// are in the value.
        private let exact: [Bool]
        private let automaton: AhoCorasick?
        /// The longest literal every pattern requires, if there is one: a value without it can
        /// match no pattern, and one search for it (eight bytes a step) rejects such a value
        /// sooner than the automaton's walk (a byte a step).
        private let common: Int?

        init(patterns: [ByteRegex]) {
            var literals: [[UInt8]] = []
            required = patterns.map { p in
                var mask: UInt64 = 0
                for lit in p.requiredLiterals.map(AhoCorasick.screenPiece) {
                    let k = literals.firstIndex(of: lit) ?? literals.count
                    // Past 64 literals a pattern is screened by those it has within the first 64
                    // (fewer literals reject fewer values, never a value that can match).
                    guard k < 64 else { continue }
                    if k == literals.count { literals.append(lit) }
                    mask |= 1 << UInt64(k)
                }
                return mask
            }
            self.literals = literals
            exact = patterns.map { p in p.requiredLiterals.allSatisfy { $0.count <= AhoCorasick.screenLength } }
            automaton = literals.count >= 2 ? AhoCorasick(patterns: literals) : nil
            let everywhere = required.reduce(required.isEmpty ? 0 : ~0) { $0 & $1 }
            common = literals.indices.filter { everywhere & (1 << UInt64($0)) != 0 }.max { literals[$0].count < literals[$1].count }
        }

        /// The pieces screened for, by bit: a scan of the field that reports each piece it finds
        /// (and may report some it does not hold) can stand in for `present`. Reported pieces
        /// that are not there only cost a pattern's try.
        var pieces: [[UInt8]] { literals }

        /// The literals that occur in `value`, as a mask for `allows`.
        func present(in value: UnsafeBufferPointer<UInt8>) -> UInt64 {
            guard let automaton else {
                return literals.isEmpty || !StringMatcher.find(literals[0], in: value, fold: true) ? 0 : 1
            }
            if let common, !StringMatcher.find(literals[common], in: value, fold: true) { return 0 }
            var present: UInt64 = 0
            automaton.scan(value) { present |= 1 << UInt64($0) }
            return present
        }

        /// False when pattern `p` requires a literal that `present` lacks.
        func allows(_ p: Int, present: UInt64) -> Bool { required[p] & ~present == 0 }

        /// Whether a value that `allows` pattern `p` is known to hold its literals.
        func literalsFound(_ p: Int) -> Bool { exact[p] }
    }

    /// OR of conditions; a condition is an AND of `field: one of values` (case-insensitive).
    package struct EventPredicate: Sendable {
        package var anyEvent: Bool
        package var conditions: [[(field: String, values: [StringMatcher])]]
        /// The values as the pipeline writes them (for sources that filter by exact value, such as sd-journal matches).
        package var written: [[(field: String, values: [String])]] = []

        package static let all = EventPredicate(anyEvent: true, conditions: [])

        package func matches(_ fields: EventFields) -> Bool {
            if anyEvent { return true }
            for condition in conditions {
                var ok = true
                for (field, values) in condition {
                    if !fields.anyValue(field, { v in values.contains { $0.matches(v) } }) {
                        ok = false
                        break
                    }
                }
                if ok { return true }
            }
            return false
        }
    }

    // MARK: Loading

    /// Loads every `.yml` pipeline file in `directory` (sorted by name; later files add to earlier ones).
    package static func load(directory: String) throws(RuleError) -> Pipeline {
        var pipeline = Pipeline()
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".yml") || $0.hasSuffix(".yaml") }.sorted()
        if files.isEmpty { throw RuleError(SourceLocation(file: directory, line: 0), "no pipeline files found") }
        for f in files { try pipeline.add(file: directory + "/" + f) }
        return pipeline
    }

    package mutating func add(file: String) throws(RuleError) {
        let loc0 = SourceLocation(file: file, line: 0)
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw RuleError(loc0, "cannot read pipeline file")
        }
        let root: Node
        do {
            guard let node = try YAMLText.compose(text, resolver: .basic) else { throw RuleError(loc0, "empty pipeline file") }
            root = node
        } catch let e as YamlError {
            throw RuleFileReader.yamlError(e, file: file)
        } catch let e as RuleError {
            throw e
        } catch {
            throw RuleError(loc0, "YAML error: \(error)")
        }
        files.append(file)
        if let kw = root.value(for: "keyword_fields") { keywordFields = kw.stringList }
        if let derived = root.value(for: "derived_fields") { derivedFields.formUnion(derived.stringList) }
        if let key = root.value(for: "session_key") { sessionKey = key.stringList }
        if let carried = root.value(for: "session_fields") { sessionFields = carried.stringList }
        if let events = root.value(for: "session_events") { sessionEvents = try Self.predicate(events, file) }
        for r in root.value(for: "routes")?.array() ?? [] {
            guard let ls = r.value(for: "logsource"), let ev = r.value(for: "events") else {
                throw RuleError(r.location(file), "a route needs 'logsource' and 'events'")
            }
            routes.append(Route(logsource: try Self.logsource(ls, file), events: try Self.predicate(ev, file), location: r.location(file)))
        }
        for m in root.value(for: "field_mappings")?.array() ?? [] {
            var fields: [String: [String]] = [:]
            for (k, _, v) in m.value(for: "fields")?.pairs ?? [] { fields[k] = v.stringList }
            let ls = try m.value(for: "logsource").map { node throws(RuleError) in try Self.logsource(node, file) } ?? [:]
            fieldMappings.append(FieldMapping(logsource: ls, fields: fields))
        }
        for x in root.value(for: "extractors")?.array() ?? [] {
            let name = x.value(for: "name")?.scalarText ?? "extractor"
            guard let field = x.value(for: "field")?.scalarText, let patterns = x.value(for: "patterns") else {
                throw RuleError(x.location(file), "extractor '\(name)' needs 'field' and 'patterns'")
            }
            var compiled: [ByteRegex] = []
            for p in patterns.array() {
                guard let text = p.scalarText else { throw RuleError(p.location(file), "pattern must be a string") }
                do {
                    compiled.append(try ByteRegex(text, stepBudget: 2_000_000))
                } catch {
                    throw RuleError(p.location(file), "extractor '\(name)': bad pattern: \(error)")
                }
            }
            let stageText = x.value(for: "stage")?.scalarText ?? "finding"
            guard let stage = Stage(rawValue: stageText) else {
                throw RuleError(x.location(file), "extractor '\(name)': stage must be 'detect', 'finding' or 'session'")
            }
            let events = try x.value(for: "events").map { n throws(RuleError) in try Self.predicate(n, file) } ?? .all
            let maxBytes = Int(x.value(for: "max_input_bytes")?.scalarText ?? "") ?? 4096
            extractors.append(
                Extractor(name: name, stage: stage, events: events, field: field, patterns: compiled, maxInputBytes: maxBytes))
        }
    }

    static func logsource(_ node: Node, _ file: String) throws(RuleError) -> [String: String] {
        guard let pairs = node.pairs else { throw RuleError(node.location(file), "logsource must be a map") }
        var out: [String: String] = [:]
        for (k, _, v) in pairs { out[k] = v.scalarText?.lowercased() }
        return out
    }

    static func predicate(_ node: Node, _ file: String) throws(RuleError) -> EventPredicate {
        if node.scalarText == "all" { return .all }
        var conditions: [[(field: String, values: [StringMatcher])]] = []
        var written: [[(field: String, values: [String])]] = []
        let items: [Node] = node.pairs != nil ? [node] : node.array()
        for item in items {
            guard let pairs = item.pairs else { throw RuleError(item.location(file), "an event condition must be a map of field: values") }
            conditions.append(
                pairs.map { (k, _, v) in
                    (FieldName.canonical(k), v.stringList.map { StringMatcher(SigmaPattern(sigma: $0), caseSensitive: false) })
                })
            written.append(pairs.map { (k, _, v) in (k, v.stringList) })
        }
        var predicate = EventPredicate(anyEvent: false, conditions: conditions)
        predicate.written = written
        return predicate
    }

    // MARK: Use

    /// The route for a rule's logsource, or nil if no configured source produces it.
    ///
    /// `category` and `service` must agree exactly (a rule for `category: file_event` never
    /// falls back to the route for all Linux events); `product` and other keys, where the route
    /// names them, must equal the rule's. Among fitting routes the one naming most keys wins.
    package func route(for logsource: [String: String]) -> Int? {
        var best: Int?
        var bestKeys = -1
        // Lowered once, not once per route.
        let logsource = logsource.mapValues { $0.lowercased() }
        for (i, r) in routes.enumerated() {
            let exact = r.logsource["category"] == logsource["category"] && r.logsource["service"] == logsource["service"]
            let fits = exact && r.logsource.allSatisfy { k, v in logsource[k] == v }
            if fits, r.logsource.count > bestKeys {
                best = i
                bestKeys = r.logsource.count
            }
        }
        return best
    }

    /// The event fields a Sigma field reads for a rule with `logsource`.
    package func eventFields(for sigmaField: String, logsource: [String: String]) -> [String] {
        var result: [String]?
        var bestKeys = -1
        for m in fieldMappings {
            guard let target = m.fields[sigmaField] else { continue }
            let fits = m.logsource.allSatisfy { k, v in logsource[k]?.lowercased() == v }
            if fits, m.logsource.count > bestKeys {
                result = target
                bestKeys = m.logsource.count
            }
        }
        return result ?? [sigmaField]
    }

    /// Runs the extractors of `stage` whose events match, adding their named groups as fields.
    /// Each extractor's events are tested when its turn comes, so an earlier one's fields count.
    package func extract(_ stage: Stage, into event: inout Event) {
        for x in extractors.indices where extractors[x].stage == stage && extractors[x].events.matches(event.fields) {
            run(x, on: &event)
        }
    }

    /// Runs the extractors at `list` (indices into `extractors`, already known to apply to the
    /// event), adding their named groups as fields. For each extractor `list[k]` with bit k of
    /// `riding` set, `present[presentBase + k]` holds the literals of its screen that its field
    /// may hold, found by a pass over the field made already (see `LiteralScreen.pieces`);
    /// the others' screens read the field themselves.
    package func extract(_ list: [Int], into event: inout Event, present: [UInt64]? = nil, riding: UInt64 = 0, presentBase: Int = 0) {
        for (k, x) in list.enumerated() {
            let known = k < 64 && riding & (1 << UInt64(k)) != 0 ? present?[presentBase + k] : nil
            run(x, on: &event, present: known)
        }
    }

    /// Fields that extractors add (their named groups) or sessions share: a pass over an
    /// event's fields before extraction may not have seen them.
    package var addedFields: Set<String> {
        var names = Set(sessionFields)
        for x in extractors {
            for p in x.patterns { names.formUnion(p.groupNames.compactMap { $0 }) }
        }
        return names
    }

    /// Runs extractor `x`: the first of its patterns that matches adds its named groups.
    private func run(_ x: Int, on event: inout Event, present known: UInt64? = nil) {
        // Indices, not copies: an extractor holds several arrays, and this runs for every match.
        // The value is read where it lies in the event's buffer (taken as a slice, it retained
        // and released the buffer).
        guard let at = event.fields.index(of: extractors[x].field) else { return }
        let whole = event.fields.range(at: at)
        let input = whole.lowerBound..<min(whole.upperBound, whole.lowerBound + extractors[x].maxInputBytes)
        let base = input.lowerBound
        let screen = extractors[x].screen
        let found = event.fields.storage.withUnsafeBufferPointer { storage -> (pattern: Int, groups: [Range<Int>?])? in
            let v = UnsafeBufferPointer(rebasing: storage[input])
            let present = known ?? screen.present(in: v)
            for p in extractors[x].patterns.indices where screen.allows(p, present: present) {
                // The pattern's literals are taken as present, when they are no longer than the
                // pieces screened (a scan that reported one wrongly costs only this try).
                if let groups = extractors[x].patterns[p].firstMatch(v, literalFound: screen.literalsFound(p)) { return (p, groups) }
            }
            return nil
        }
        guard let found else { return }
        let names = extractors[x].patterns[found.pattern].groupNames
        for (k, range) in found.groups.enumerated() {
            guard let name = names[k], let range, !range.isEmpty, !event.fields.contains(name) else { continue }
            // A captured value is part of the field it came from: the new field points at
            // those bytes of the event's buffer, with no copy.
            event.fields.add(name, range: (base + range.lowerBound)..<(base + range.upperBound))
        }
    }
}
