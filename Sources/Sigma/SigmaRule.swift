import EventModel
import Foundation
import Yams

/// A Sigma detection rule's metadata and its compiled detection.
package struct SigmaRule: Sendable {
    package var id: String
    package var name: String?
    package var title: String
    package var status: String?
    package var description: String?
    package var author: String?
    package var references: [String]
    package var tags: [String]
    package var falsePositives: [String]
    package var level: Severity
    package var logsource: [String: String]
    package var location: SourceLocation
    package var detection: CompiledDetection
    /// `session: summary` (a logtriage extension field): the rule restates failures its session
    /// already reported, so it reports only when the session has reported none.
    package var sessionSummary = false
    /// `session: provisional`: the rule's line is reported only if the session's next line matches
    /// no rule (it would otherwise restate the same attempt, or the attempt succeeded another way).
    package var sessionProvisional = false

    /// ATT&CK technique ids from the tags (`attack.t1110.001` → `T1110.001`).
    package var attackTechniques: [String] { AttackTags.techniques(tags) }

    /// ATT&CK tactic names from the tags (`attack.credential-access`).
    package var attackTactics: [String] { AttackTags.tactics(tags) }
}

/// A parsed but not yet compiled rule document.
struct RuleDocument {
    var node: Node
    var file: String
    var kind: Kind

    enum Kind { case detection, correlation, filter }
}

/// Reads rule files into documents and reports what cannot be used.
package struct RuleFileReader {
    package init() {}

    /// Every `.yml`/`.yaml` below `path` (or `path` itself), sorted, skipping `tests` and `pipelines` folders.
    package static func ruleFiles(at path: String) -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return [path] }
        if !isDir.boolValue { return [path] }
        var out: [String] = []
        // Paths and lstat: a URL and its resource values per file cost half as much as parsing it.
        func walk(_ dir: String) {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
            for name in names {
                let full = dir.hasSuffix("/") ? dir + name : dir + "/" + name
                var st = stat()
                guard lstat(full, &st) == 0 else { continue }
                // A link to a folder is not followed (as before: a cycle cannot loop).
                if st.st_mode & S_IFMT == S_IFDIR {
                    if name != "tests", name != "pipelines", !name.hasPrefix(".") { walk(full) }
                    continue
                }
                if name.hasSuffix(".yml") || name.hasSuffix(".yaml") { out.append(full) }
            }
        }
        // Absolute and without `..`, so a rule's place reads the same from any working directory.
        walk(URL(fileURLWithPath: path).standardizedFileURL.path)
        return out.sorted()
    }

    func documents(file: String) -> ([RuleDocument], [RuleError]) {
        guard let data = FileManager.default.contents(atPath: file) else {
            return ([], [RuleError(SourceLocation(file: file, line: 0), "cannot read file")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return ([], [RuleError(SourceLocation(file: file, line: 0), "file is not valid UTF-8")])
        }
        var docs: [RuleDocument] = []
        var errors: [RuleError] = []
        do {
            // Scalars are typed by `SigmaValue` from their text and style, not by YAML tags: the
            // basic resolver skips the tag patterns Yams would otherwise run on every key it hashes.
            let parser = try YAMLText.parser(text, resolver: .basic)
            while let node = try parser.nextRoot() {
                let loc = node.location(file)
                guard node.pairs != nil else {
                    errors.append(RuleError(loc, "a rule document must be a map"))
                    continue
                }
                if node.value(for: "action")?.scalarText == "global" {
                    errors.append(RuleError(loc, "'action: global' multi-document rules are obsolete; write one rule per document"))
                } else if node.value(for: "correlation") != nil {
                    docs.append(RuleDocument(node: node, file: file, kind: .correlation))
                } else if node.value(for: "filter") != nil {
                    docs.append(RuleDocument(node: node, file: file, kind: .filter))
                } else if node.value(for: "detection") != nil {
                    docs.append(RuleDocument(node: node, file: file, kind: .detection))
                } else {
                    errors.append(RuleError(loc, "document has neither 'detection', 'correlation' nor 'filter'"))
                }
            }
        } catch let error as YamlError {
            errors.append(Self.yamlError(error, file: file))
        } catch {
            errors.append(RuleError(SourceLocation(file: file, line: 0), "YAML error: \(error)"))
        }
        return (docs, errors)
    }

    package static func yamlError(_ error: YamlError, file: String) -> RuleError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return RuleError(SourceLocation(file: file, line: mark.line, column: mark.column), "YAML error: \(problem)")
        default:
            return RuleError(SourceLocation(file: file, line: 0), "YAML error: \(error)")
        }
    }
}

/// Every YAML file logtriage reads is parsed through here, with its encoding named. Yams's
/// default encoding reads the whole process environment on every parse (a third of a
/// millisecond per rule file on a test machine), and prints a notice to standard output, where
/// findings go, when YAMS_DEFAULT_ENCODING is set.
package enum YAMLText {
    package static func parser(_ text: String, resolver: Resolver = .default) throws -> Yams.Parser {
        try Yams.Parser(yaml: text, resolver: resolver, encoding: .utf8)
    }

    /// The text's single document (nil when empty).
    package static func compose(_ text: String, resolver: Resolver = .default) throws -> Node? {
        try parser(text, resolver: resolver).singleRoot()
    }
}
