import EventModel
import Findings
import Foundation
import Ingest
import Sigma
import Yams

/// Runs rule tests: fixture log lines and what a rule must find in them.
///
/// A test file holds `tests:`, a list of cases with `rule` (id), `name`, `lines`, optional
/// `format`, `matches` (how many of the lines the rule matches) and optional `observables`
/// (name: value pairs the first match must carry).
package struct RuleTestRunner {
    package let rules: RuleSet

    package init(rules: RuleSet) { self.rules = rules }

    package struct Outcome: Sendable {
        package var passed = 0
        package var failures: [String] = []
        /// Rules without any test case.
        package var untested: [String] = []
    }

    package static func testFiles(in directory: String) -> [String] {
        let fm = FileManager.default
        let files = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
        return files.filter { $0.hasSuffix(".yml") || $0.hasSuffix(".yaml") }.sorted().map { directory + "/" + $0 }
    }

    package func run(files: [String]) -> Outcome {
        var outcome = Outcome()
        var tested = Set<String>()
        for file in files {
            guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
                outcome.failures.append("\(file): cannot read")
                continue
            }
            let root: Node
            do {
                guard let n = try YAMLText.compose(text) else { continue }
                root = n
            } catch {
                outcome.failures.append("\(file): YAML error: \(error)")
                continue
            }
            for testCase in root.value(for: "tests")?.array() ?? [] {
                let line = testCase.mark?.line ?? 0
                let name = testCase.value(for: "name")?.scalarText ?? "case at line \(line)"
                guard let ruleID = testCase.value(for: "rule")?.scalarText,
                    let expected = Int(testCase.value(for: "matches")?.scalarText ?? "")
                else {
                    outcome.failures.append("\(file):\(line): a test needs 'rule' and 'matches'")
                    continue
                }
                let target: Target
                if let r = rules.rules.firstIndex(where: { $0.id == ruleID }) {
                    target = .rule(r)
                } else if let c = rules.correlations.firstIndex(where: { $0.id == ruleID }) {
                    target = .correlation(c)
                } else {
                    outcome.failures.append("\(file):\(line): \(name): no loaded rule has id \(ruleID)")
                    continue
                }
                tested.insert(ruleID)
                let lines = testCase.value(for: "lines")?.stringList ?? []
                var options = ReaderOptions()
                if let f = testCase.value(for: "format")?.scalarText, let format = InputFormat(rawValue: f) { options.format = format }
                options.year = Int(testCase.value(for: "year")?.scalarText ?? "") ?? 2024
                let result: (Int, Event?)
                do {
                    result = try matches(target, lines: lines, options: options)
                } catch {
                    outcome.failures.append("\(file):\(line): \(name): \(error)")
                    continue
                }
                var problems: [String] = []
                if result.0 != expected { problems.append("expected \(expected) matches, got \(result.0)") }
                if let want = testCase.value(for: "observables")?.pairs {
                    let got = result.1.map(Observable.from) ?? []
                    for (k, _, v) in want {
                        let value = v.scalarText ?? ""
                        if !got.contains(where: { $0.name == k && $0.value == value }) {
                            let seen = got.map { "\($0.name)=\($0.value)" }.joined(separator: ", ")
                            problems.append("expected observable \(k)=\(value), got [\(seen)]")
                        }
                    }
                }
                if problems.isEmpty {
                    outcome.passed += 1
                } else {
                    outcome.failures.append("\(file):\(line): \(name) (rule \(ruleID)): " + problems.joined(separator: "; "))
                }
            }
        }
        outcome.untested =
            rules.rules.filter { !tested.contains($0.id) }.map { "\($0.location.file): \($0.title) (\($0.id))" }
            + rules.correlations.filter { !tested.contains($0.id) }.map { "\($0.location.file): \($0.title) (\($0.id))" }
        return outcome
    }

    enum Target {
        case rule(Int)
        case correlation(Int)
    }

    /// How many of `lines` the rule matches (for a correlation: how many incidents it reports),
    /// and the first matching event (enriched) or the first incident's group as an event.
    func matches(_ target: Target, lines: [String], options: ReaderOptions) throws -> (Int, Event?) {
        let path = NSTemporaryDirectory() + "logtriage-ruletest-\(getpid())-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
        var reader = try EventReader(path: path, options: options)
        var context = RuleSet.Context()
        var engine = CorrelationEngine(rules: rules)
        var count = 0
        var first: Event?
        var incidents: [CorrelationIncident] = []
        func record(_ matched: [Int], _ event: Event) {
            if case .rule(let r) = target, matched.contains(r) {
                count += 1
                if first == nil { first = event }
            }
            for r in matched { incidents += engine.observe(rule: r, event: event, time: event.time ?? 0) }
        }
        while var event = try reader.next() {
            for (matched, matchedEvent) in rules.evaluate(&event, context: &context) { record(matched, matchedEvent) }
        }
        for (pending, event) in rules.drainPending(context: &context) { record(pending, event) }
        incidents += engine.flush()
        if case .correlation(let c) = target {
            let mine = incidents.filter { $0.correlation == c }
            count = mine.count
            if let i = mine.first {
                var e = Event(position: SourcePosition(source: "incident", line: 0, offset: 0))
                for (f, v) in i.group where !v.isEmpty { e.fields.add(f, v) }
                first = e
            }
        }
        return (count, first)
    }
}
