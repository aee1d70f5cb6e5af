import EventModel

/// One `field|modifiers: values` entry, or a keyword search, compiled.
package struct DetectionItem: Sendable {
    /// Event fields to read (after field mapping); for keywords, the keyword fields.
    package var fields: [String]
    package var isKeyword: Bool
    /// Outer: the listed values; inner: alternatives one value expands to (OR-linked even under `all`).
    package var values: [[ValueTest]]
    package var linkAll: Bool
    /// `neq`: the item's result is negated.
    package var negate: Bool
    /// `exists`: true/false tests presence only.
    package var exists: Bool?
    /// A `null` value: matches when the field is absent.
    package var matchesAbsent: Bool

    func evaluate(_ fields: EventFields, stats: inout MatchStatistics) -> Bool {
        let result = evaluateInner(fields, stats: &stats)
        return negate ? !result : result
    }

    private func evaluateInner(_ event: EventFields, stats: inout MatchStatistics) -> Bool {
        if let exists {
            return fields.contains { event.contains($0) } == exists
        }
        var present = false
        for name in fields where event.contains(name) {
            present = true
            break
        }
        if !present { return matchesAbsent }
        // The field is present from here on; anyValue below finds its values.
        if values.isEmpty { return false }
        if linkAll {
            for a in values.indices {
                let hit = fields.contains { name in
                    event.anyValue(name) { v in values[a].indices.contains { values[a][$0].matches(v, in: event, stats: &stats) } }
                }
                if !hit { return false }
            }
            return true
        }
        for name in fields {
            let hit = event.anyValue(name) { v in
                // By index, where the tests lie: `for … in` took a copy of each list and test.
                for a in values.indices {
                    for t in values[a].indices where values[a][t].matches(v, in: event, stats: &stats) { return true }
                }
                return false
            }
            if hit { return true }
        }
        return false
    }
}

/// A search identifier's content: a map (AND of items) or a list of maps (OR).
package enum Selection: Sendable {
    case allOf([DetectionItem])
    case anyOf([[DetectionItem]])

    func evaluate(_ fields: EventFields, stats: inout MatchStatistics) -> Bool {
        switch self {
        case .allOf(let items):
            for item in items where !item.evaluate(fields, stats: &stats) { return false }
            return !items.isEmpty
        case .anyOf(let maps):
            for items in maps where items.allSatisfy({ $0.evaluate(fields, stats: &stats) }) { return true }
            return false
        }
    }
}

/// A condition over search identifiers, resolved to selection indices.
package indirect enum ConditionExpression: Sendable, Equatable {
    case selection(Int)
    case and([ConditionExpression])
    case or([ConditionExpression])
    case not(ConditionExpression)
    case constant(Bool)

    /// The same expression over selections moved up by `offset` (when selections are appended).
    package func shifted(by offset: Int) -> ConditionExpression {
        switch self {
        case .selection(let i): .selection(i + offset)
        case .and(let xs): .and(xs.map { $0.shifted(by: offset) })
        case .or(let xs): .or(xs.map { $0.shifted(by: offset) })
        case .not(let x): .not(x.shifted(by: offset))
        case .constant: self
        }
    }
}

/// A detection ready to evaluate: the selections and the condition over them.
package struct CompiledDetection: Sendable {
    package var selections: [Selection]
    package var selectionNames: [String]
    package var condition: ConditionExpression

    package func evaluate(_ fields: EventFields, stats: inout MatchStatistics) -> Bool {
        // Each selection is evaluated at most once; the memo lives on the stack, not the heap.
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: selections.count) { cache in
            cache.initialize(repeating: -1)
            return eval(condition, fields, cache, &stats)
        }
    }

    private func eval(
        _ e: ConditionExpression, _ f: EventFields, _ cache: UnsafeMutableBufferPointer<Int8>, _ stats: inout MatchStatistics
    ) -> Bool {
        switch e {
        case .selection(let i):
            if cache[i] >= 0 { return cache[i] == 1 }
            let r = selections[i].evaluate(f, stats: &stats)
            cache[i] = r ? 1 : 0
            return r
        case .and(let xs):
            for x in xs where !eval(x, f, cache, &stats) { return false }
            return true
        case .or(let xs):
            for x in xs where eval(x, f, cache, &stats) { return true }
            return false
        case .not(let x): return !eval(x, f, cache, &stats)
        case .constant(let b): return b
        }
    }
}
