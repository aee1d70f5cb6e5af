import EventModel
import Foundation
import Yams

/// What loading rules produced: every problem with its place, and the counts `rules lint` prints.
package struct LoadReport: Sendable {
    package var loaded = 0
    package var rejected = 0
    package var errors: [RuleError] = []
    package var warnings: [RuleError] = []
    package init() {}
}

/// Compiled rules with logsource routing and a literal prefilter, ready to match events.
package struct RuleSet: Sendable {
    package private(set) var rules: [SigmaRule] = []
    package private(set) var correlations: [SigmaCorrelation] = []
    /// For each rule, the correlations it feeds.
    package private(set) var ruleConsumers: [[Int]] = []
    /// For each correlation, the correlations it feeds (chains).
    package private(set) var correlationConsumers: [[Int]] = []
    /// Rules that only feed correlations (`generate: false`, the default) and report nothing alone.
    package private(set) var silentRules: Set<Int> = []
    package let pipeline: Pipeline
    private var ruleRoute: [Int] = []
    /// Rules that must be evaluated for every routed event (no literal is necessary for them).
    private var alwaysEvaluate: [Bool] = []
    private var routeRules: [[Int]] = []
    /// Per field with literals: its name, its literals, and for each literal the rules it makes
    /// candidates. Automata are built from these per set of routes (`RouteScreen`).
    private var literalFields: [String] = []
    private var fieldLiterals: [[[UInt8]]] = []
    private var literalRules: [[[Int32]]] = []
    /// For each route, the literal fields its rules need (indices into `literalFields`).
    private var routeLiteralFields: [[Int]] = []
    /// The detections alone, so matching does not copy rule metadata.
    private var detections: [CompiledDetection] = []
    /// Distinct event fields that routes, extractors and session events test, and each of those
    /// predicates over their indices.
    private var predicateFieldNames = FieldNameSet([])
    /// `session_key`'s fields, process id last.
    private var sessionKeyNames = FieldNameSet([])
    /// `session_fields`, carried from line to line of a session.
    private var sessionFieldNames = FieldNameSet([])
    private var routePredicates: [IndexedPredicate] = []
    private var extractorPredicates: [IndexedPredicate] = []
    private var sessionPredicate = IndexedPredicate(anyEvent: false, conditions: [])
    /// An extractor writes a field some predicate tests, so which routes and extractors apply can
    /// change while an event is worked on: plans are then not cached.
    private var extractorsFeedPredicates = false
    /// Every literal the prefilter searches for, lower-cased.
    package private(set) var prefilterLiterals: Set<[UInt8]> = []

    package init(pipeline: Pipeline) { self.pipeline = pipeline }

    /// Loads and compiles every rule file below `paths`.
    package static func load(paths: [String], pipeline: Pipeline) -> (RuleSet, LoadReport) {
        var set = RuleSet(pipeline: pipeline)
        var report = LoadReport()
        let reader = RuleFileReader()
        var ids: [String: SourceLocation] = [:]
        var correlationDocs: [RuleDocument] = []
        var filterDocs: [RuleDocument] = []
        for path in paths {
            if !FileManager.default.fileExists(atPath: path) {
                report.errors.append(RuleError(SourceLocation(file: path, line: 0), "no such file or directory"))
                continue
            }
            for file in RuleFileReader.ruleFiles(at: path) {
                let (docs, errors) = reader.documents(file: file)
                report.errors += errors
                report.rejected += errors.count
                for doc in docs {
                    switch doc.kind {
                    case .detection:
                        switch set.compile(doc) {
                        case .success(let rule):
                            if let first = ids[rule.id] {
                                report.errors.append(RuleError(rule.location, "duplicate rule id \(rule.id) (first at \(first))"))
                                report.rejected += 1
                                continue
                            }
                            ids[rule.id] = rule.location
                            if rule.status == "deprecated" || rule.status == "unsupported" {
                                report.warnings.append(RuleError(rule.location, "rule status is '\(rule.status!)'"))
                            }
                            set.add(rule)
                            report.loaded += 1
                        case .failure(let problems):
                            report.errors += problems.list
                            report.rejected += 1
                        }
                    case .correlation:
                        correlationDocs.append(doc)
                    case .filter:
                        filterDocs.append(doc)
                    }
                }
            }
        }
        set.applyFilters(filterDocs, report: &report)
        set.loadCorrelations(correlationDocs, report: &report)
        set.buildPrefilter()
        return (set, report)
    }

    // MARK: Filters

    /// Applies Sigma meta-filters: each referenced rule (or, without `rules`, each rule of the
    /// filter's logsource) gets `and not (filter condition)`, so local allow-listing needs no
    /// edits to upstream rules.
    private mutating func applyFilters(_ docs: [RuleDocument], report: inout LoadReport) {
        for doc in docs {
            let node = doc.node
            let loc = node.location(doc.file)
            guard let filter = node.value(for: "filter"), filter.pairs != nil else {
                report.errors.append(RuleError(loc, "'filter' must be a map"))
                report.rejected += 1
                continue
            }
            var logsource: [String: String] = [:]
            for (k, _, v) in node.value(for: "logsource")?.pairs ?? [] { logsource[k] = v.scalarText?.lowercased() }
            let refs = filter.value(for: "rules")?.stringList ?? []
            var targets: [Int] = []
            var missing: [String] = []
            for ref in refs {
                if let r = rules.firstIndex(where: { $0.id == ref || $0.name == ref }) { targets.append(r) } else { missing.append(ref) }
            }
            if refs.isEmpty {
                targets = rules.indices.filter { r in
                    logsource.allSatisfy { k, v in k == "definition" || rules[r].logsource[k]?.lowercased() == v }
                }
            }
            if !missing.isEmpty {
                report.errors.append(RuleError(loc, "filter references \(missing.joined(separator: ", ")), which is no loaded rule"))
                report.rejected += 1
                continue
            }
            // The filter's detection is the `filter` map without its `rules` key.
            guard case .mapping(var m) = filter else { continue }
            m[Node("rules")] = nil
            var failed = false
            for r in targets {
                switch compileDetection(Node.mapping(m), file: doc.file, logsource: rules[r].logsource) {
                case .success(let d):
                    let offset = rules[r].detection.selections.count
                    rules[r].detection.selections += d.selections
                    rules[r].detection.selectionNames += d.selectionNames.map { "_filter_\($0)" }
                    rules[r].detection.condition = .and([rules[r].detection.condition, .not(d.condition.shifted(by: offset))])
                case .failure(let p):
                    report.errors += p.list
                    failed = true
                }
                if failed { break }
            }
            if failed { report.rejected += 1 } else { report.loaded += 1 }
        }
    }

    // MARK: Correlations

    private mutating func loadCorrelations(_ docs: [RuleDocument], report: inout LoadReport) {
        var parsed: [SigmaCorrelation] = []
        for doc in docs {
            switch SigmaCorrelation.parse(doc.node, file: doc.file) {
            case .success(let c): parsed.append(c)
            case .failure(let p):
                report.errors += p.list
                report.rejected += 1
            }
        }
        // Resolve references by id or name; drop correlations whose references do not resolve,
        // repeating until stable, since a correlation may feed another.
        var ruleIndex: [String: Int] = [:]
        for (i, r) in rules.enumerated() {
            ruleIndex[r.id] = i
            if let n = r.name { ruleIndex[n] = i }
        }
        var accepted = parsed
        while true {
            var names: [String: Int] = [:]
            for (i, c) in accepted.enumerated() {
                names[c.id] = i
                if let n = c.name { names[n] = i }
            }
            var next: [SigmaCorrelation] = []
            var changed = false
            for var c in accepted {
                var inputs: [SigmaCorrelation.Input] = []
                var missing: String?
                for ref in c.ruleReferences {
                    if let r = ruleIndex[ref] {
                        inputs.append(.rule(r))
                    } else if let k = names[ref], accepted[k].id != c.id {
                        inputs.append(.correlation(k))
                    } else {
                        missing = ref
                        break
                    }
                }
                if let missing {
                    report.errors.append(
                        RuleError(c.location, "correlation '\(c.title)' references '\(missing)', which is no loaded rule or correlation"))
                    report.rejected += 1
                    changed = true
                    continue
                }
                c.inputs = inputs
                next.append(c)
            }
            if !changed {
                accepted = next
                break
            }
            accepted = next.map {
                var c = $0; c.inputs = []; return c
            }
        }
        // Reject cycles among correlations.
        var state = [UInt8](repeating: 0, count: accepted.count)
        func cyclic(_ i: Int) -> Bool {
            if state[i] == 1 { return true }
            if state[i] == 2 { return false }
            state[i] = 1
            for case .correlation(let k) in accepted[i].inputs where cyclic(k) { return true }
            state[i] = 2
            return false
        }
        if let i = accepted.indices.first(where: cyclic) {
            report.errors.append(RuleError(accepted[i].location, "correlation '\(accepted[i].title)' is part of a reference cycle"))
            report.rejected += accepted.count
            accepted = []
        }
        correlations = accepted
        report.loaded += accepted.count
        ruleConsumers = Array(repeating: [], count: rules.count)
        correlationConsumers = Array(repeating: [], count: accepted.count)
        for (ci, c) in accepted.enumerated() {
            for input in c.inputs {
                switch input {
                case .rule(let r):
                    ruleConsumers[r].append(ci)
                    if !c.generate { silentRules.insert(r) }
                case .correlation(let k): correlationConsumers[k].append(ci)
                }
            }
        }
    }

    // MARK: Compiling

    package struct Problems: Error { var list: [RuleError] }

    func compile(_ doc: RuleDocument) -> Result<SigmaRule, Problems> {
        let node = doc.node
        let file = doc.file
        var problems: [RuleError] = []
        let loc = node.location(file)
        func text(_ key: String) -> String? { node.value(for: key)?.scalarText }

        let title = text("title") ?? ""
        if title.isEmpty { problems.append(RuleError(loc, "rule has no 'title'")) }
        guard let lsNode = node.value(for: "logsource"), let lsPairs = lsNode.pairs else {
            return .failure(Problems(list: problems + [RuleError(loc, "rule has no 'logsource' map")]))
        }
        var logsource: [String: String] = [:]
        for (k, _, v) in lsPairs { logsource[k] = v.scalarText }
        guard let route = pipeline.route(for: logsource) else {
            let desc = logsource.filter { $0.key != "definition" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            return .failure(
                Problems(
                    list: problems + [RuleError(lsNode.location(file), "no pipeline route for logsource \(desc.joined(separator: ", "))")]))
        }
        var level = Severity.medium
        if let l = text("level") {
            if let s = Severity(sigmaLevel: l) { level = s } else { problems.append(RuleError(loc, "unknown level '\(l)'")) }
        }
        let detection: CompiledDetection
        switch compileDetection(node.value(for: "detection")!, file: file, logsource: logsource) {
        case .success(let d): detection = d
        case .failure(let e): return .failure(Problems(list: problems + e.list))
        }
        if !problems.isEmpty { return .failure(Problems(list: problems)) }
        let id = text("id") ?? text("name") ?? "\(URL(fileURLWithPath: file).lastPathComponent):\(loc.line)"
        var rule = SigmaRule(
            id: id, name: text("name"), title: title, status: text("status"), description: text("description"),
            author: text("author"), references: node.value(for: "references")?.stringList ?? [],
            tags: node.value(for: "tags")?.stringList ?? [], falsePositives: node.value(for: "falsepositives")?.stringList ?? [],
            level: level, logsource: logsource, location: loc, detection: detection,
            sessionSummary: text("session") == "summary", sessionProvisional: text("session") == "provisional")
        rule.logsource["_route"] = String(route)
        return .success(rule)
    }

    func compileDetection(_ node: Node, file: String, logsource: [String: String]) -> Result<CompiledDetection, Problems> {
        let compiler = ItemCompiler(
            file: file, mapField: { pipeline.eventFields(for: $0, logsource: logsource) }, keywordFields: pipeline.keywordFields)
        guard let pairs = node.pairs else { return .failure(Problems(list: [RuleError(node.location(file), "'detection' must be a map")])) }
        var names: [String] = []
        var selections: [Selection] = []
        var problems: [RuleError] = []
        var conditionNode: Node?
        for (key, keyNode, value) in pairs {
            if key == "condition" {
                conditionNode = value
                continue
            }
            if key == "timeframe" {
                problems.append(RuleError(keyNode.location(file), "'timeframe' is obsolete; write a Sigma correlation rule"))
                continue
            }
            do {
                selections.append(try compileSelection(value, compiler: compiler, file: file))
                names.append(key)
            } catch {
                problems.append(error)
            }
        }
        guard let conditionNode else {
            return .failure(Problems(list: problems + [RuleError(node.location(file), "detection has no 'condition'")]))
        }
        if selections.isEmpty, problems.isEmpty {
            problems.append(RuleError(node.location(file), "detection is empty"))
        }
        if !problems.isEmpty { return .failure(Problems(list: problems)) }
        var expressions: [ConditionExpression] = []
        for text in conditionNode.stringList {
            var parser = ConditionParser(text, identifiers: names)
            do {
                expressions.append(try parser.parse())
            } catch {
                problems.append(RuleError(conditionNode.location(file), error.message))
            }
        }
        if !problems.isEmpty { return .failure(Problems(list: problems)) }
        let condition = expressions.count == 1 ? expressions[0] : .or(expressions)
        return .success(CompiledDetection(selections: selections, selectionNames: names, condition: condition))
    }

    private func compileSelection(_ value: Node, compiler: ItemCompiler, file: String) throws(RuleError) -> Selection {
        switch value {
        case .mapping:
            let pairs = value.pairs!
            if pairs.isEmpty { throw RuleError(value.location(file), "empty search identifier") }
            var items: [DetectionItem] = []
            for (k, kn, v) in pairs { items.append(try compiler.compile(key: k, keyNode: kn, value: v)) }
            return .allOf(items)
        case .sequence(let seq):
            if seq.isEmpty { throw RuleError(value.location(file), "empty search identifier") }
            if seq.allSatisfy({ $0.pairs != nil }) {
                var maps: [[DetectionItem]] = []
                for m in seq {
                    var items: [DetectionItem] = []
                    for (k, kn, v) in m.pairs! { items.append(try compiler.compile(key: k, keyNode: kn, value: v)) }
                    maps.append(items)
                }
                return .anyOf(maps)
            }
            if seq.allSatisfy({ $0.scalarText != nil }) {
                return .allOf([try compiler.compile(key: "", keyNode: value, value: value)])
            }
            throw RuleError(value.location(file), "a list must hold either maps or plain keywords, not both")
        case .scalar:
            return .allOf([try compiler.compile(key: "", keyNode: value, value: value)])
        default:
            throw RuleError(value.location(file), "unsupported search identifier")
        }
    }

    private mutating func add(_ rule: SigmaRule) {
        var rule = rule
        let route = Int(rule.logsource.removeValue(forKey: "_route")!)!
        rules.append(rule)
        ruleRoute.append(route)
    }

    // MARK: Prefilter

    /// A set of (field, literal) pairs at least one of which every match contains; nil if none is known.
    typealias Literals = [(field: String, literal: [UInt8])]

    private func literals(_ e: ConditionExpression, _ d: CompiledDetection) -> Literals? {
        switch e {
        case .selection(let i): return literals(d.selections[i])
        case .constant, .not: return nil
        case .or(let xs):
            var all: Literals = []
            for x in xs {
                guard let l = literals(x, d) else { return nil }
                all += l
            }
            return all
        case .and(let xs):
            return xs.compactMap { literals($0, d) }.max { Self.strength($0) < Self.strength($1) }
        }
    }

    private func literals(_ s: Selection) -> Literals? {
        switch s {
        case .allOf(let items): return items.compactMap(literals).max { Self.strength($0) < Self.strength($1) }
        case .anyOf(let maps):
            var all: Literals = []
            for items in maps {
                guard let l = items.compactMap(literals).max(by: { Self.strength($0) < Self.strength($1) }) else { return nil }
                all += l
            }
            return all
        }
    }

    private func literals(_ item: DetectionItem) -> Literals? {
        if item.negate || item.exists != nil || item.matchesAbsent || item.values.isEmpty { return nil }
        func valueLiterals(_ alternatives: [ValueTest]) -> [[UInt8]]? {
            var out: [[UInt8]] = []
            for t in alternatives {
                guard case .string(let m) = t, let lit = m.requiredLiteral else { return nil }
                out.append(lit)
            }
            return out
        }
        var chosen: [[UInt8]]?
        if item.linkAll {
            chosen = item.values.compactMap(valueLiterals).max { ($0.map(\.count).min() ?? 0) < ($1.map(\.count).min() ?? 0) }
        } else {
            var all: [[UInt8]] = []
            for v in item.values {
                guard let l = valueLiterals(v) else { return nil }
                all += l
            }
            chosen = all
        }
        guard let chosen, !chosen.isEmpty else { return nil }
        return item.fields.flatMap { f in chosen.map { (field: f, literal: $0) } }
    }

    /// Prefer few, long literals: a short one matches too often to filter anything.
    private static func strength(_ l: Literals) -> Int {
        let shortest = l.map(\.literal.count).min() ?? 0
        return min(shortest, 8) * 1000 - l.count
    }

    /// Exact `field=value` alternatives that every event a loaded rule can see satisfies, for a
    /// source that can filter before reading (sd-journal matches): OR of groups, each an AND of
    /// fields, each field one of its values. Nil when some rule sees every event or a route uses
    /// wildcards, so that the source must deliver everything.
    package func sourceMatches() -> [[(field: String, value: String)]]? {
        var groups: [[(field: String, value: String)]] = []
        var seen = Set<String>()
        for route in Set(ruleRoute).sorted() {
            let events = pipeline.routes[route].events
            if events.anyEvent || events.written.isEmpty { return nil }
            for condition in events.written {
                var group: [(field: String, value: String)] = []
                for (field, values) in condition {
                    if pipeline.derivedFields.contains(field) { return nil }
                    for v in values {
                        if v.contains("*") || v.contains("?") || v.contains("\\") { return nil }
                        group.append((field, v))
                    }
                }
                let key = group.map { "\($0.field)=\($0.value)" }.sorted().joined(separator: "\n")
                if seen.insert(key).inserted { groups.append(group) }
            }
        }
        return groups.isEmpty ? nil : groups
    }

    private mutating func buildPrefilter() {
        alwaysEvaluate = []
        routeRules = Array(repeating: [], count: pipeline.routes.count)
        var fieldPatterns: [String: [[UInt8]]] = [:]
        var fieldPatternRules: [String: [[Int32]]] = [:]
        var fieldIndex: [String: [[UInt8]: Int]] = [:]
        var routeFields: [Set<String>] = Array(repeating: [], count: pipeline.routes.count)
        for (r, rule) in rules.enumerated() {
            routeRules[ruleRoute[r]].append(r)
            guard let lits = literals(rule.detection.condition, rule.detection) else {
                alwaysEvaluate.append(true)
                continue
            }
            alwaysEvaluate.append(false)
            for (field, lit) in lits {
                prefilterLiterals.insert(lit)
                routeFields[ruleRoute[r]].insert(field)
                if let k = fieldIndex[field]?[lit] {
                    if fieldPatternRules[field]![k].last != Int32(r) { fieldPatternRules[field]![k].append(Int32(r)) }
                } else {
                    fieldIndex[field, default: [:]][lit] = fieldPatterns[field, default: []].count
                    fieldPatterns[field, default: []].append(lit)
                    fieldPatternRules[field, default: []].append([Int32(r)])
                }
            }
        }
        literalFields = fieldPatterns.keys.sorted()
        fieldLiterals = literalFields.map { fieldPatterns[$0]! }
        literalRules = literalFields.map { fieldPatternRules[$0]! }
        routeLiteralFields = routeFields.map { fields in fields.compactMap { literalFields.firstIndex(of: $0) }.sorted() }
        detections = rules.map(\.detection)
        var names: [String] = []
        func indexed(_ p: Pipeline.EventPredicate) -> IndexedPredicate {
            let conditions = p.conditions.map { condition in
                condition.map { (field, values) in
                    if let i = names.firstIndex(of: field) { return (field: i, values: values) }
                    names.append(field)
                    return (field: names.count - 1, values: values)
                }
            }
            return IndexedPredicate(anyEvent: p.anyEvent, conditions: conditions)
        }
        routePredicates = pipeline.routes.map { indexed($0.events) }
        extractorPredicates = pipeline.extractors.map { indexed($0.events) }
        sessionPredicate = indexed(pipeline.sessionEvents)
        predicateFieldNames = FieldNameSet(names)
        sessionKeyNames = FieldNameSet(pipeline.sessionKey)
        sessionFieldNames = FieldNameSet(pipeline.sessionFields)
        extractorsFeedPredicates = pipeline.extractors.contains { x in
            x.patterns.contains { p in p.groupNames.contains { $0.map(names.contains) ?? false } }
        }
    }

    // MARK: Matching

    /// Per-thread scratch space and counters for `match`.
    package struct Context: Sendable {
        var stamp: [UInt32] = []
        var generation: UInt32 = 0
        /// Scratch for `match`: the candidates of the event, by index in its screen's rules.
        var due: [Int32] = []
        /// Scratch for `sessionKey`: where the key fields' values lie.
        var sessionRanges: [Range<Int>?] = []
        /// Scratch for `SessionMemory.share`: where the session fields' values lie.
        var sharedRanges: [Range<Int>?] = []
        var ranges: [Range<Int>?] = []
        /// What applies to the event being worked on (from `match`, for `settle`).
        var plan = Plan.none
        var planCache = PlanCache()
        /// Prefilters built so far, one per distinct set of routes and extractors.
        var screens: [ScreenKey: RouteScreen] = [:]
        /// Per extractor of the plan's screen (`RouteScreen.extractors`), the pieces of its
        /// literals that the prefilter's pass found in the event, for `settle` (`match` makes the
        /// pass whenever the plan has a screen).
        var present: [UInt64] = []
        var sessions = SessionMemory()
        package var statistics = MatchStatistics()
        package init() {}
    }

    /// What each session has shown so far, bounded: when full, the older half is forgotten.
    struct SessionMemory: Sendable {
        struct Session: Sendable {
            /// What the session showed of each session field (by its index in `session_fields`).
            var shown = Shown()
            /// A failure has been reported for this session.
            var reported = false
            /// Rules that matched a line naming no address, waiting for a later line that does.
            var pending: [Int] = []
            var pendingEvent: Event? {
                get { held?.pending }
                set { held = Held(pending: newValue, provisional: provisionalEvent) }
            }
            /// A provisional failure, reported only if the session's next line matches nothing.
            var provisional: [Int] = []
            var provisionalEvent: Event? {
                get { held?.provisional }
                set { held = Held(pending: pendingEvent, provisional: newValue) }
            }
            var serial = 0
            var lastTime: Int64?
            /// The events held back, out of line: few sessions hold one at a time, and the
            /// thousands that hold none stay a few words each.
            private var held: Held?
        }

        /// The values a session showed, by field index, in one buffer: a 4-byte count of fields,
        /// a 4-byte length per field (all ones: not shown), then the values in order. A buffer
        /// of up to `inlineCapacity` bytes (an address and a user name) lies in the session
        /// itself, a longer one in an array. Sessions come and go by the thousand: inline, their
        /// values cost no allocation, and forgetting a session frees nothing.
        struct Shown: Sendable {
            private static let inlineCapacity = 48
            private var inline: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
            /// The bytes in use inline; 0 when the buffer is in `spilled` or nothing was shown.
            private var inlineCount = 0
            private var spilled: [UInt8] = []
            private static let absent = UInt32.max

            /// Calls `body` with the buffer where it lies (empty when nothing was shown).
            private func withBuffer<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
                if !spilled.isEmpty { return spilled.withUnsafeBufferPointer(body) }
                let count = inlineCount
                return withUnsafeBytes(of: inline) { body(UnsafeBufferPointer(rebasing: $0.bindMemory(to: UInt8.self)[..<count])) }
            }

            /// Where value `k` lies in `buffer`; nil when the session has not shown it.
            private static func range(_ k: Int, in buffer: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
                guard buffer.count >= 4 else { return nil }
                func word(_ i: Int) -> UInt32 { UnsafeRawBufferPointer(buffer).loadUnaligned(fromByteOffset: i * 4, as: UInt32.self) }
                let count = Int(word(0))
                guard k < count else { return nil }
                var start = 4 * (count + 1)
                for j in 0..<k where word(j + 1) != absent { start += Int(word(j + 1)) }
                let length = word(k + 1)
                return length == absent ? nil : start..<(start + Int(length))
            }

            /// Calls `body` with value `k` where it lies, if the session showed it.
            func withValue<R>(_ k: Int, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R? {
                withBuffer { buffer in Self.range(k, in: buffer).map { body(UnsafeBufferPointer(rebasing: buffer[$0])) } }
            }

            /// Value `k`, if the session showed it.
            func value(_ k: Int) -> [UInt8]? { withValue(k) { Array($0) } }

            /// Whether value `k` is `v`.
            func holds(_ k: Int, _ v: UnsafeBufferPointer<UInt8>) -> Bool { withValue(k) { $0.elementsEqual(v) } ?? false }

            /// Takes the values at `ranges` of `storage` where there are some, and keeps the
            /// others.
            mutating func update(from storage: [UInt8], ranges: [Range<Int>?]) {
                // Value k's length: the new one where there is one, else the one kept. (Worked
                // out twice, for the total and to write it: a list of them was an allocation.)
                func length(_ k: Int, _ old: UnsafeBufferPointer<UInt8>) -> Int? { ranges[k]?.count ?? Self.range(k, in: old)?.count }
                let total = withBuffer { old in ranges.indices.reduce(4 * (ranges.count + 1)) { $0 + (length($1, old) ?? 0) } }
                // Written on the stack (for a buffer of usual size), then kept inline or in an array.
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: total) { out in
                    var at = 0
                    func put(_ bytes: UnsafeRawBufferPointer) {
                        UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(out)[at..<(at + bytes.count)]).copyMemory(
                            from: bytes)
                        at += bytes.count
                    }
                    func put(_ w: UInt32) { withUnsafeBytes(of: w.littleEndian) { put($0) } }
                    put(UInt32(ranges.count))
                    withBuffer { old in
                        for k in ranges.indices { put(length(k, old).map { UInt32($0) } ?? Self.absent) }
                    }
                    withBuffer { old in
                        storage.withUnsafeBytes { storage in
                            for k in ranges.indices {
                                if let new = ranges[k] {
                                    put(UnsafeRawBufferPointer(rebasing: storage[new]))
                                } else if let kept = Self.range(k, in: old) {
                                    put(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: old[kept])))
                                }
                            }
                        }
                    }
                    if total <= Self.inlineCapacity {
                        spilled = []
                        inlineCount = total
                        withUnsafeMutableBytes(of: &inline) {
                            $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(out)[..<total]))
                        }
                    } else {
                        spilled = Array(out)
                        inlineCount = 0
                    }
                }
            }
        }

        final class Held: Sendable {
            let pending: Event?
            let provisional: Event?

            /// Nil when there is nothing to hold.
            init?(pending: Event?, provisional: Event?) {
                guard pending != nil || provisional != nil else { return nil }
                self.pending = pending
                self.provisional = provisional
            }
        }

        /// A process id seen again after this long is a new connection (pids are reused).
        static let idleMicros: Int64 = 600 * 1_000_000

        /// Session key → the session's slot in `sessions`.
        var slots: [UInt64: Int] = [:]
        /// The live sessions, in the order they were first seen.
        var sessions: [Session] = []
        var serial = 0
        let capacity = 16_384
        /// Failures whose wait is over, each with the event it matched on, for the caller to report.
        var released: [(rules: [Int], event: Event)] = []

        /// Reports what a session still holds before it is forgotten: nothing is dropped silently.
        mutating func retire(_ session: Session) {
            if let e = session.pendingEvent { released.append((session.pending, e)) }
            if let e = session.provisionalEvent { released.append((session.provisional, e)) }
        }

        /// Marks `key` as seen at `time` and returns its session's slot. A full memory forgets its
        /// older half; a process id seen again after a long idle is a new connection. Either way
        /// held failures are released.
        mutating func touch(_ key: UInt64, time: Int64?) -> Int {
            serial += 1
            let slot: Int
            if let known = slots[key] {
                slot = known
                if let time, let last = sessions[slot].lastTime, time - last > Self.idleMicros || time < last - Self.idleMicros {
                    retire(sessions[slot])
                    sessions[slot] = Session()
                }
            } else {
                if sessions.count >= capacity { forgetOlderHalf() }
                slot = sessions.count
                sessions.append(Session())
                slots[key] = slot
            }
            sessions[slot].serial = serial
            if let time { sessions[slot].lastTime = time }
            return slot
        }

        /// Retires the sessions not seen in the last `capacity / 2` touches, oldest slot first.
        private mutating func forgetOlderHalf() {
            let cutoff = serial - capacity / 2
            var renumbered: [Int] = Array(repeating: -1, count: sessions.count)
            // Compacted where they lie: a kept session is moved down (swapped), not copied, so
            // none of what it holds is retained and released again.
            var list: [Session] = []
            swap(&list, &sessions)
            var kept = 0
            list.withUnsafeMutableBufferPointer { list in
                for slot in list.indices {
                    if list[slot].serial > cutoff {
                        renumbered[slot] = kept
                        if kept != slot { list.swapAt(kept, slot) }
                        kept += 1
                    } else {
                        retire(list[slot])
                    }
                }
            }
            list.removeSubrange(kept...)
            sessions = list
            var keptSlots: [UInt64: Int] = [:]
            keptSlots.reserveCapacity(capacity)
            for (key, slot) in slots where renumbered[slot] >= 0 { keptSlots[key] = renumbered[slot] }
            slots = keptSlots
        }

        /// Keeps what `event` shows of `fields` for the session at `slot` (a copy only when a
        /// value changed), and adds to `event` those it lacks that the session showed earlier.
        /// The fields' first values are found in one pass (`ranges` is scratch).
        mutating func share(_ slot: Int, with event: inout Event, fields: FieldNameSet, ranges: inout [Range<Int>?]) {
            let n = fields.names.count
            if ranges.count != n { ranges = Array(repeating: nil, count: n) }
            _ = event.fields.firstRanges(of: fields, into: &ranges)
            var changed = false
            for k in 0..<n {
                if let range = ranges[k] {
                    let same = event.fields.storage.withUnsafeBufferPointer {
                        sessions[slot].shown.holds(k, UnsafeBufferPointer(rebasing: $0[range]))
                    }
                    if !same { changed = true }
                } else {
                    _ = sessions[slot].shown.withValue(k) { event.fields.add(fields.names[k], bytes: $0) }
                }
            }
            if changed { sessions[slot].shown.update(from: event.fields.storage, ranges: ranges) }
        }

        /// Forgets every session, retiring what each holds.
        mutating func retireAll() {
            for session in sessions { retire(session) }
            sessions.removeAll()
            slots.removeAll()
        }
    }

    /// A predicate over the values of `predicateFieldNames` (by index): OR of conditions, each an
    /// AND of `field: one of values`.
    struct IndexedPredicate: Sendable {
        var anyEvent: Bool
        var conditions: [[(field: Int, values: [StringMatcher])]]

        func applies(_ ranges: [Range<Int>?], _ storage: UnsafeBufferPointer<UInt8>) -> Bool {
            if anyEvent { return true }
            for condition in conditions {
                var ok = true
                for (field, values) in condition {
                    guard let range = ranges[field] else {
                        ok = false
                        break
                    }
                    let v = UnsafeBufferPointer(rebasing: storage[range])
                    if !values.contains(where: { $0.matches(v) }) {
                        ok = false
                        break
                    }
                }
                if ok { return true }
            }
            return false
        }
    }

    /// What applies to an event: the prefilter of the routes whose rules see it, and the
    /// extractors of each stage. It depends only on the few fields the predicates test (mostly
    /// the program name), so it is worked out once per distinct combination of their values,
    /// cached, and shared by reference (taking it for an event is one retain, not one per list).
    final class Plan: Sendable {
        /// The prefilter for these routes; nil when no route applies.
        let screen: RouteScreen?
        /// Extractor indices per stage; nil: test each extractor's events when extracting.
        let detect: [Int]?
        let finding: [Int]?
        let session: [Int]?
        /// The event belongs to sessions; nil: test `session_events` when settling.
        let sessionEvent: Bool?

        init(screen: RouteScreen?, detect: [Int]?, finding: [Int]?, session: [Int]?, sessionEvent: Bool?) {
            self.screen = screen
            self.detect = detect
            self.finding = finding
            self.session = session
            self.sessionEvent = sessionEvent
        }

        static let none = Plan(screen: nil, detect: nil, finding: nil, session: nil, sessionEvent: nil)
    }

    /// The plans worked out so far, direct-mapped by a hash of the predicate fields' values: a
    /// slot holds the last plan whose hash fell on it. Lines pick among a few dozen plans (one
    /// per program name, mostly), so slots rarely collide, and a lookup is an index and a
    /// comparison of those values (a dictionary hashed the hash again).
    struct PlanCache: Sendable {
        static let slotCount = 1024
        private var hashes: [UInt64] = []
        private var entries: [PlanCacheEntry?] = []

        /// The plan cached for `hash` and values at `ranges`, if any.
        func plan(_ hash: UInt64, _ ranges: UnsafeBufferPointer<Range<Int>?>, _ storage: UnsafeBufferPointer<UInt8>) -> Plan? {
            guard !hashes.isEmpty else { return nil }
            let slot = Self.slot(hash)
            guard hashes[slot] == hash else { return nil }
            return entries.withUnsafeBufferPointer { entries in
                guard let entry = entries[slot], entry.matches(ranges, storage) else { return nil }
                return entry.plan
            }
        }

        mutating func insert(_ hash: UInt64, _ entry: PlanCacheEntry) {
            if hashes.isEmpty {
                hashes = Array(repeating: 0, count: Self.slotCount)
                entries = Array(repeating: nil, count: Self.slotCount)
            }
            let slot = Self.slot(hash)
            hashes[slot] = hash
            entries[slot] = entry
        }

        private static func slot(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash ^ hash >> 32) & (slotCount - 1) }
    }

    /// A plan and the predicate fields' values it was worked out for: the values one after the
    /// other in `bytes`, and each one's length (-1: the field was absent).
    final class PlanCacheEntry: Sendable {
        let bytes: [UInt8]
        let lengths: [Int]
        let plan: Plan

        init(_ ranges: UnsafeBufferPointer<Range<Int>?>, _ storage: UnsafeBufferPointer<UInt8>, plan: Plan) {
            var bytes: [UInt8] = []
            var lengths: [Int] = []
            for range in ranges {
                lengths.append(range?.count ?? -1)
                if let range { bytes.append(contentsOf: storage[range]) }
            }
            self.bytes = bytes
            self.lengths = lengths
            self.plan = plan
        }

        func matches(_ ranges: UnsafeBufferPointer<Range<Int>?>, _ storage: UnsafeBufferPointer<UInt8>) -> Bool {
            bytes.withUnsafeBufferPointer { bytes in
                lengths.withUnsafeBufferPointer { lengths in
                    guard lengths.count == ranges.count else { return false }
                    var at = 0
                    for k in 0..<ranges.count {
                        let length = lengths[k]
                        guard let r = ranges[k] else {
                            if length >= 0 { return false }
                            continue
                        }
                        guard length == r.upperBound &- r.lowerBound else { return false }
                        var j = 0
                        while j < length {
                            if bytes[at &+ j] != storage[r.lowerBound &+ j] { return false }
                            j &+= 1
                        }
                        at &+= length
                    }
                    return true
                }
            }
        }
    }

    /// The plan for an event whose predicate fields stand at `c.ranges`: from the cache, or
    /// worked out and cached.
    private func cachedPlan(_ storage: UnsafeBufferPointer<UInt8>, context c: inout Context) -> Plan {
        let (hash, cached) = c.ranges.withUnsafeBufferPointer { ranges -> (UInt64, Plan?) in
            var hasher = FNV1a()
            for range in ranges {
                if let range { hasher.combine(storage[range]) }
                hasher.separate(present: range != nil)
            }
            return (hasher.value, c.planCache.plan(hasher.value, ranges, storage))
        }
        if let cached { return cached }
        let routes = routePredicates.indices.map { r in !routeRules[r].isEmpty && routePredicates[r].applies(c.ranges, storage) }
        var stages: [Pipeline.Stage: [Int]] = [:]
        for (x, extractor) in pipeline.extractors.enumerated() where extractorPredicates[x].applies(c.ranges, storage) {
            stages[extractor.stage, default: []].append(x)
        }
        let finding = stages[.finding] ?? []
        let session = stages[.session] ?? []
        let plan = Plan(
            screen: screen(for: routes, extractors: finding + session, context: &c), detect: stages[.detect] ?? [], finding: finding,
            session: session, sessionEvent: sessionPredicate.applies(c.ranges, storage))
        let entry = c.ranges.withUnsafeBufferPointer { PlanCacheEntry($0, storage, plan: plan) }
        c.planCache.insert(hash, entry)
        return plan
    }

    /// Indices of the rules that match `event`. Detect-stage extractors run first and may add fields.
    package func match(_ event: inout Event, context c: inout Context) -> [Int] {
        if c.stamp.count != rules.count {
            c.stamp = Array(repeating: 0, count: rules.count)
            c.ranges = Array(repeating: nil, count: predicateFieldNames.names.count)
        }
        c.generation &+= 1
        if c.generation == 0 {
            for i in c.stamp.indices { c.stamp[i] = 0 }
            c.generation = 1
        }
        // Read each field the predicates test once. A field named twice (journald allows it)
        // is tested value by value, without the cache.
        if !extractorsFeedPredicates, event.fields.firstRanges(of: predicateFieldNames, into: &c.ranges) {
            c.plan = event.fields.storage.withUnsafeBufferPointer { cachedPlan($0, context: &c) }
            pipeline.extract(c.plan.detect!, into: &event)
        } else {
            pipeline.extract(.detect, into: &event)
            let routes = routeRules.indices.map { r in !routeRules[r].isEmpty && pipeline.routes[r].events.matches(event.fields) }
            c.plan = Plan(
                screen: screen(for: routes, extractors: [], context: &c), detect: nil, finding: nil, session: nil, sessionEvent: nil)
        }
        guard let screen = c.plan.screen else { return [] }
        let gen = c.generation
        if c.present.count < screen.extractors.count { c.present = Array(repeating: 0, count: screen.extractors.count) }
        for k in screen.extractors.indices { c.present[k] = 0 }
        // Where in `screen.rules` the candidates stand, each once: `due[0]` counts them, and they
        // follow in the order hits find them (room for every rule, as each comes once).
        if c.due.count <= rules.count { c.due = Array(repeating: 0, count: rules.count + 1) }
        c.due[0] = 0
        // The fields, once per line: read through `event` (an inout), each automaton's lookup
        // retained both of their buffers.
        let fields = event.fields
        c.stamp.withUnsafeMutableBufferPointer { stamp in
            c.due.withUnsafeMutableBufferPointer { due in
                c.present.withUnsafeMutableBufferPointer { present in
                    screen.extractorPiece.withUnsafeBufferPointer { extractorPiece in
                        screen.position.withUnsafeBufferPointer { position in
                            // The automata, their candidate lists and field names are used where they lie:
                            // copies would retain their arrays for every automaton of every line. (Moved
                            // into a method of `RouteScreen`, this loop took nine more retains per line.)
                            screen.candidates.withLists { start, rules in
                                screen.patternBase.withUnsafeBufferPointer { patternBase in
                                    screen.fields.withUnsafeBufferPointer { names in
                                        screen.automata.withUnsafeBufferPointer { automata in
                                            for a in automata.indices {
                                                let base = Int(patternBase[a])
                                                func hit(_ p: Int32) {
                                                    let pattern = base + Int(p)
                                                    let piece = Int(extractorPiece[pattern])
                                                    if piece >= 0 {
                                                        // A piece of an extractor's literal (no rules): noted for `settle`.
                                                        present[piece >> 6] |= 1 << UInt64(piece & 63)
                                                        return
                                                    }
                                                    for i in Int(start[pattern])..<Int(start[pattern + 1]) {
                                                        let rule = Int(rules[i])
                                                        if stamp[rule] != gen {
                                                            stamp[rule] = gen
                                                            due[0] += 1
                                                            due[Int(due[0])] = position[rule]
                                                        }
                                                    }
                                                }
                                                _ = fields.anyValue(names[a]) { value in
                                                    if Fold.hasNonASCII(value) {
                                                        // Unicode folding can turn non-ASCII letters into ASCII ones; scan the folded text too.
                                                        let folded = Fold.lowercased(Array(value))
                                                        folded.withUnsafeBufferPointer { automata[a].scan($0, hit) }
                                                    }
                                                    automata[a].scan(value, hit)
                                                    return false
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        // In route order, as the routes list their rules: the rules always due and those marked.
        for p in screen.always where c.stamp[screen.rules[Int(p)]] != gen {
            c.due[0] += 1
            c.due[Int(c.due[0])] = p
        }
        let due = 1..<(Int(c.due[0]) + 1)
        // Sorted where it lies: sorting `c.due[due]` would copy the array (the slice shares it).
        c.due.withUnsafeMutableBufferPointer { all in
            var part = UnsafeMutableBufferPointer(rebasing: all[due])
            part.sort()
        }
        var matched: [Int] = []
        for k in due {
            let rule = screen.rules[Int(c.due[k])]
            c.statistics.rulesEvaluated += 1
            if detections[rule].evaluate(fields, stats: &c.statistics) { matched.append(rule) }
        }
        return matched
    }

    /// The prefilter for one set of routes: an automaton per field over the literals of those
    /// routes' rules alone. A line is scanned only for what its routes' rules need, and a host
    /// that never sees a kind of event never builds the automata its rules would need.
    final class RouteScreen: Sendable {
        let fields: [String]
        let automata: [AhoCorasick]
        /// The extractors whose screens ride on the automata (a plan's finding and session
        /// extractors), so that their fields are not read again (see `Context.present`): those
        /// of `extractors[k]` when bit k of `riding` is set.
        let extractors: [Int]
        let riding: UInt64
        /// Per pattern (numbered as in `candidates`): -1 for a rule literal's piece, else
        /// 64 × k + b for piece b of the screen of extractor `extractors[k]`.
        let extractorPiece: [Int32]
        /// The rules each pattern makes candidates, for every automaton in one list: pattern
        /// `p` of automaton `a` is entry `patternBase[a] + p`.
        let candidates: Candidates
        let patternBase: [Int32]
        /// The routes' rules, in route order: those to evaluate when always due or marked.
        let rules: [Int]
        /// Per rule of the set, its index in `rules` (-1 for rules of other routes).
        let position: [Int32]
        /// Indices in `rules` of the rules evaluated on every event (no literal to screen them by).
        let always: [Int32]

        init(
            fields: [String], automata: [AhoCorasick], extractors: [Int], riding: UInt64, extractorPiece: [Int32],
            candidates: Candidates, patternBase: [Int32], rules: [Int], ruleCount: Int, always: [Bool]
        ) {
            self.fields = fields
            self.automata = automata
            self.extractors = extractors
            self.riding = riding
            self.extractorPiece = extractorPiece
            self.candidates = candidates
            self.patternBase = patternBase
            self.rules = rules
            var position = [Int32](repeating: -1, count: ruleCount)
            for (p, rule) in rules.enumerated() { position[rule] = Int32(p) }
            self.position = position
            self.always = rules.indices.filter { always[rules[$0]] }.map { Int32($0) }
        }
    }

    /// Pattern id → the rules it makes candidates, in two flat arrays (a hit reads two, not an
    /// array per pattern).
    struct Candidates: Sendable {
        private var start: [Int32] = [0]
        private var rules: [Int32] = []

        /// The number of patterns with a list.
        var count: Int { start.count - 1 }

        mutating func append(_ list: [Int32]) {
            rules += list
            start.append(Int32(rules.count))
        }

        /// Pattern `p`'s rules are `rules[start[p] ..< start[p + 1]]`.
        @inline(__always)
        func withLists(_ body: (UnsafeBufferPointer<Int32>, UnsafeBufferPointer<Int32>) -> Void) {
            start.withUnsafeBufferPointer { start in rules.withUnsafeBufferPointer { body(start, $0) } }
        }
    }

    /// What a prefilter is built for: a set of routes, and the extractors whose screens ride on it.
    struct ScreenKey: Hashable {
        var routes: [Bool]
        var extractors: [Int]
    }

    /// The prefilter for `routes` (nil for none), built on first use, with the pieces of the
    /// literals of `extractors` in the automata of their fields. Distinct sets of routes and
    /// extractors are few (one per kind of line); past 256 the cache starts over (plans keep theirs).
    private func screen(for routes: [Bool], extractors: [Int], context c: inout Context) -> RouteScreen? {
        guard routes.contains(true) else { return nil }
        let key = ScreenKey(routes: routes, extractors: extractors)
        if let known = c.screens[key] { return known }
        if c.screens.count >= 256 { c.screens.removeAll() }
        var names: [String] = []
        var automata: [AhoCorasick] = []
        var candidates = Candidates()
        var extractorPiece: [Int32] = []
        var patternBase: [Int32] = []
        var candidateRules: [Int] = []
        var fields: Set<Int> = []
        for r in routes.indices where routes[r] {
            fields.formUnion(routeLiteralFields[r])
            candidateRules += routeRules[r]
        }
        // An extractor rides when its field is there when the prefilter reads the event: not
        // one that extractors or sessions may add later (the pass would not have seen it).
        var riding: UInt64 = 0
        let added = pipeline.addedFields
        for (k, x) in extractors.enumerated() where k < 64 && !added.contains(pipeline.extractors[x].field) {
            riding |= 1 << UInt64(k)
        }
        // The riders' fields, in the order of `literalFields`, then any others by name.
        var extraFields: [String] = []
        for (k, x) in extractors.enumerated() where riding & (1 << UInt64(k)) != 0 {
            let name = pipeline.extractors[x].field
            if let f = literalFields.firstIndex(of: name) {
                fields.insert(f)
            } else if !extraFields.contains(name) {
                extraFields.append(name)
            }
        }
        for name in fields.sorted().map({ literalFields[$0] }) + extraFields {
            var literals: [[UInt8]] = []
            var lists: [[Int32]] = []
            var pieces: [Int32] = []
            if let f = literalFields.firstIndex(of: name) {
                for (p, rules) in literalRules[f].enumerated() {
                    let kept = rules.filter { routes[ruleRoute[Int($0)]] }
                    if kept.isEmpty { continue }
                    literals.append(AhoCorasick.screenPiece(fieldLiterals[f][p]))
                    lists.append(kept)
                    pieces.append(-1)
                }
            }
            for (k, x) in extractors.enumerated() where riding & (1 << UInt64(k)) != 0 && pipeline.extractors[x].field == name {
                for (b, piece) in pipeline.extractors[x].screen.pieces.enumerated() {
                    literals.append(piece)
                    lists.append([])
                    pieces.append(Int32(64 * k + b))
                }
            }
            guard !literals.isEmpty else { continue }
            names.append(name)
            automata.append(AhoCorasick(patterns: literals, classLimit: 32))
            patternBase.append(Int32(candidates.count))
            for list in lists { candidates.append(list) }
            extractorPiece += pieces
        }
        let screen = RouteScreen(
            fields: names, automata: automata, extractors: extractors, riding: riding, extractorPiece: extractorPiece,
            candidates: candidates,
            patternBase: patternBase, rules: candidateRules, ruleCount: rules.count, always: alwaysEvaluate)
        c.screens[key] = screen
        return screen
    }

    /// Settles which rules an event reports, after `match`.
    ///
    /// A matched event gets its observables extracted (finding-stage extractors). Events of a
    /// session (sshd: one process per connection) also share what earlier lines showed: a line
    /// that names no address inherits the session's; a failure on a line that names none waits
    /// for the first later line that does and is reported there; and a session summary rule
    /// (`session: summary`, such as "Too many authentication failures") is not reported again
    /// once the session reported a failure. Returns the rules to report for this event.
    func settle(_ event: inout Event, matched: [Int], context c: inout Context) -> [Int] {
        let plan = c.plan
        // What the prefilter's pass in `match` found of the extractors' literals, when the plan's
        // screen carried them: the finding extractors come first in its list, then the session ones.
        let riding = plan.screen?.riding ?? 0
        let present = riding != 0 ? c.present : nil
        if !matched.isEmpty {
            if let list = plan.finding {
                pipeline.extract(list, into: &event, present: present, riding: riding)
            } else {
                pipeline.extract(.finding, into: &event)
            }
        }
        guard plan.sessionEvent ?? pipeline.sessionEvents.matches(event.fields), let key = sessionKey(event, ranges: &c.sessionRanges)
        else { return matched }
        let at = c.sessions.touch(key, time: event.time)
        if matched.isEmpty {
            if let list = plan.session {
                let base = plan.finding?.count ?? 0
                pipeline.extract(list, into: &event, present: present, riding: riding >> UInt64(base), presentBase: base)
            } else {
                pipeline.extract(.session, into: &event)
            }
        }
        c.sessions.share(at, with: &event, fields: sessionFieldNames, ranges: &c.sharedRanges)
        // Moved out and back (an empty session stands in), not copied: no field is retained.
        var session = SessionMemory.Session()
        swap(&session, &c.sessions.sessions[at])
        // A provisional failure (PAM's line for an attempt sshd reports itself) is superseded when
        // the next line of the session reports the same attempt or a success; otherwise it stands.
        if let held = session.provisionalEvent {
            if matched.isEmpty {
                c.sessions.released.append((session.provisional, held))
            } else {
                c.statistics.sessionFolded += session.provisional.count
            }
            session.provisional = []
            session.provisionalEvent = nil
        }
        var report = matched
        let provisional = report.filter { rules[$0].sessionProvisional }
        if !provisional.isEmpty {
            report.removeAll { rules[$0].sessionProvisional }
            session.provisional = provisional
            session.provisionalEvent = event
        }
        let hasAddress = event.fields.contains(pipeline.sessionFields.first ?? "")
        if !hasAddress {
            if !report.isEmpty, session.pendingEvent == nil {
                session.pending = report
                session.pendingEvent = event
                c.statistics.sessionDeferred += 1
            }
            report = []
        } else if session.pendingEvent != nil {
            // The address has arrived: report the waiting failure on this line.
            for r in session.pending where !report.contains(r) { report.append(r) }
            session.pending = []
            session.pendingEvent = nil
        }
        if session.reported {
            let before = report.count
            report.removeAll { rules[$0].sessionSummary }
            c.statistics.sessionFolded += before - report.count
        }
        if !report.isEmpty { session.reported = true }
        // Moved back, as it was moved out: an assignment copied it and destroyed both.
        swap(&session, &c.sessions.sessions[at])
        return report
    }

    /// Matches `event` and settles its session: the rules to report with the event they belong to,
    /// this event's own last, after any held failure that this line released.
    package func evaluate(_ event: inout Event, context c: inout Context) -> [(rules: [Int], event: Event)] {
        var (out, own) = evaluateInPlace(&event, context: &c)
        if !own.isEmpty { out.append((own, event)) }
        return out
    }

    /// `evaluate` without a copy of `event`: the failures this line released (each with its
    /// event), to report first, and the rules to report with `event` itself.
    package func evaluateInPlace(_ event: inout Event, context c: inout Context) -> (
        released: [(rules: [Int], event: Event)], rules: [Int]
    ) {
        let found = match(&event, context: &c)
        let settled = settle(&event, matched: found, context: &c)
        return (takeReleased(context: &c), settled)
    }

    /// Provisional failures that stood (the session's next line reported nothing else), each
    /// with the event it matched on. Take them after each `settle`.
    package func takeReleased(context c: inout Context) -> [(rules: [Int], event: Event)] {
        // Moved out, not copied: a copy left the list shared, and once the list had held
        // anything, emptying it allocated a new buffer on every line.
        guard !c.sessions.released.isEmpty else { return [] }
        var out: [(rules: [Int], event: Event)] = []
        swap(&out, &c.sessions.released)
        return out
    }

    /// Failures still waiting for an address or a next line (end of input): each with its event.
    package func drainPending(context c: inout Context) -> [(rules: [Int], event: Event)] {
        c.sessions.retireAll()
        defer { c.sessions.released.removeAll() }
        return c.sessions.released.sorted {
            ($0.event.position.offset, $0.event.position.line) < ($1.event.position.offset, $1.event.position.line)
        }
    }

    /// Per source, the earliest position of a failure a session still holds (waiting for an
    /// address or for the session's next line). A checkpoint must not move past it, or a crash
    /// would lose the failure.
    package func heldPositions(context c: Context) -> [String: SourcePosition] {
        var out: [String: SourcePosition] = [:]
        for session in c.sessions.sessions {
            for e in [session.pendingEvent, session.provisionalEvent].compactMap({ $0 }) { out.keepEarliest(e.position) }
        }
        return out
    }

    /// A 64-bit hash of the session key fields' first values, found in one pass over the event
    /// (no allocation per event: `ranges` is scratch; a collision between two live sessions is
    /// a 2^-64 event).
    private func sessionKey(_ event: Event, ranges: inout [Range<Int>?]) -> UInt64? {
        if ranges.count != sessionKeyNames.names.count { ranges = Array(repeating: nil, count: sessionKeyNames.names.count) }
        _ = event.fields.firstRanges(of: sessionKeyNames, into: &ranges)
        // A session needs its process id; a missing host name (a single-host log) hashes as empty.
        guard let pid = ranges.last, pid != nil else { return nil }
        var hasher = FNV1a()
        event.fields.storage.withUnsafeBufferPointer { storage in
            for range in ranges {
                if let range { hasher.combine(UnsafeBufferPointer(rebasing: storage[range])) }
                hasher.separate()
            }
        }
        return hasher.value
    }
}
