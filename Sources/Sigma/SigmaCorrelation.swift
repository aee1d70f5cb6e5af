import EventModel
import Foundation
import Yams

/// A Sigma correlation rule: a threshold or sequence over the matches of other rules.
package struct SigmaCorrelation: Sendable {
    package enum Kind: String, Sendable, CaseIterable {
        case eventCount = "event_count"
        case valueCount = "value_count"
        case temporal
        case temporalOrdered = "temporal_ordered"
        case valueSum = "value_sum"
        case valueAvg = "value_avg"
    }

    package enum Input: Sendable, Equatable {
        case rule(Int)
        case correlation(Int)
    }

    package var id: String
    package var name: String?
    package var title: String
    package var description: String?
    package var author: String?
    package var status: String?
    package var level: Severity
    package var tags: [String]
    package var references: [String]
    package var falsePositives: [String]
    package var location: SourceLocation
    package var kind: Kind
    package var ruleReferences: [String]
    package var inputs: [Input] = []
    package var groupBy: [String]
    package var timespanMicros: Int64
    package var conditions: [(op: String, value: Double)]
    package var field: String?
    /// alias → (referenced rule name or id → event field)
    package var aliases: [String: [String: String]]
    package var generate: Bool

    /// Group-by fields for events of `input` (aliases resolved).
    package func groupFields(for inputName: [String]) -> [String] {
        groupBy.map { g in
            guard let alias = aliases[g] else { return g }
            for n in inputName { if let f = alias[n] { return f } }
            return g
        }
    }

    package func holds(_ metric: Double) -> Bool { Self.holds(conditions, metric) }

    static func holds(_ conditions: [(op: String, value: Double)], _ metric: Double) -> Bool {
        conditions.allSatisfy { c in
            switch c.op {
            case "gt": metric > c.value
            case "gte": metric >= c.value
            case "lt": metric < c.value
            case "lte": metric <= c.value
            case "eq": metric == c.value
            case "neq": metric != c.value
            default: false
            }
        }
    }

    package var attackTechniques: [String] { AttackTags.techniques(tags) }
    package var attackTactics: [String] { AttackTags.tactics(tags) }

    /// Parses `\d+[smhdwMy]` (the spec's s, m, h, d; pySigma's w, M, y too).
    static func timespan(_ text: String) -> Int64? {
        guard let unit = text.last, let n = Int64(text.dropLast()), n > 0 else { return nil }
        let seconds: Int64
        switch unit {
        case "s": seconds = 1
        case "m": seconds = 60
        case "h": seconds = 3600
        case "d": seconds = 86400
        case "w": seconds = 7 * 86400
        case "M": seconds = 30 * 86400
        case "y": seconds = 365 * 86400
        default: return nil
        }
        return n * seconds * 1_000_000
    }

    /// Parses a correlation document (references are resolved later, against the loaded set).
    static func parse(_ node: Node, file: String) -> Result<SigmaCorrelation, RuleSet.Problems> {
        let loc = node.location(file)
        func text(_ key: String) -> String? { node.value(for: key)?.scalarText }
        var problems: [RuleError] = []
        guard let c = node.value(for: "correlation"), c.pairs != nil else {
            return .failure(RuleSet.Problems(list: [RuleError(loc, "'correlation' must be a map")]))
        }
        let cloc = c.location(file)
        let title = text("title") ?? ""
        if title.isEmpty { problems.append(RuleError(loc, "correlation has no 'title'")) }
        let typeText = c.value(for: "type")?.scalarText ?? ""
        guard let kind = Kind(rawValue: typeText) else {
            let known = Kind.allCases.map(\.rawValue).joined(separator: ", ")
            let reason =
                typeText == "value_percentile"
                ? "correlation type 'value_percentile' is not evaluated: the specification leaves its condition undefined"
                : "unknown correlation type '\(typeText)' (known: \(known))"
            return .failure(RuleSet.Problems(list: problems + [RuleError(cloc, reason)]))
        }
        let refs = c.value(for: "rules")?.stringList ?? []
        if refs.isEmpty { problems.append(RuleError(cloc, "correlation names no 'rules'")) }
        let groupBy = c.value(for: "group-by")?.stringList ?? []
        var span: Int64 = 0
        if let t = c.value(for: "timespan")?.scalarText, let v = timespan(t) {
            span = v
        } else {
            problems.append(RuleError(cloc, "correlation needs a 'timespan' such as 10m"))
        }
        var conditions: [(op: String, value: Double)] = []
        var field: String?
        if let cond = c.value(for: "condition") {
            guard let pairs = cond.pairs else {
                return .failure(
                    RuleSet.Problems(
                        list: problems + [RuleError(cond.location(file), "correlation 'condition' must be a map such as {gte: 5}")]))
            }
            for (k, kn, v) in pairs {
                if k == "field" {
                    field = v.stringList.first
                    continue
                }
                guard ["gt", "gte", "lt", "lte", "eq", "neq"].contains(k), let n = v.scalarText.flatMap(Double.init) else {
                    problems.append(RuleError(kn.location(file), "unknown condition '\(k)' (gt, gte, lt, lte, eq, neq with a number)"))
                    continue
                }
                conditions.append((k, n))
            }
        }
        switch kind {
        case .eventCount, .valueCount, .valueSum, .valueAvg:
            if conditions.isEmpty { problems.append(RuleError(cloc, "\(kind.rawValue) needs a 'condition'")) }
            if kind != .eventCount, field == nil { problems.append(RuleError(cloc, "\(kind.rawValue) needs 'condition.field'")) }
        case .temporal, .temporalOrdered:
            if conditions.isEmpty { conditions = [("gte", Double(refs.count))] }
        }
        var aliases: [String: [String: String]] = [:]
        for (alias, _, map) in c.value(for: "aliases")?.pairs ?? [] {
            var m: [String: String] = [:]
            for (rule, _, f) in map.pairs ?? [] { m[rule] = f.scalarText }
            aliases[alias] = m
        }
        var level = Severity.medium
        if let l = text("level") {
            if let s = Severity(sigmaLevel: l) { level = s } else { problems.append(RuleError(loc, "unknown level '\(l)'")) }
        }
        if !problems.isEmpty { return .failure(RuleSet.Problems(list: problems)) }
        let generate = c.value(for: "generate")?.scalarText.map { $0 == "true" } ?? false
        return .success(
            SigmaCorrelation(
                id: text("id") ?? text("name") ?? "\(URL(fileURLWithPath: file).lastPathComponent):\(loc.line)", name: text("name"),
                title: title, description: text("description"), author: text("author"), status: text("status"), level: level,
                tags: node.value(for: "tags")?.stringList ?? [], references: node.value(for: "references")?.stringList ?? [],
                falsePositives: node.value(for: "falsepositives")?.stringList ?? [], location: loc, kind: kind, ruleReferences: refs,
                groupBy: groupBy, timespanMicros: span, conditions: conditions, field: field, aliases: aliases, generate: generate))
    }
}
