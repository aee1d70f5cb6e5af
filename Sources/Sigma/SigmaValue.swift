import Yams

/// A typed scalar from a rule: Sigma compares strings, numbers, booleans and null differently.
package enum SigmaValue: Sendable, Equatable {
    case string(String)
    case int(Int)
    case float(Double)
    case bool(Bool)
    case null

    /// Types a YAML scalar the way the rule author wrote it: quoted text is always a string.
    init(scalar: Node.Scalar) {
        let text = scalar.string
        guard scalar.style == .plain || scalar.style == .any else {
            self = .string(text)
            return
        }
        switch text {
        case "", "~", "null", "Null", "NULL": self = .null
        case "true", "True", "TRUE": self = .bool(true)
        case "false", "False", "FALSE": self = .bool(false)
        default:
            if let i = Int(text) {
                self = .int(i)
            } else if text.first.map({ $0.isNumber || $0 == "-" || $0 == "." }) == true, let d = Double(text), d.isFinite {
                self = .float(d)
            } else {
                self = .string(text)
            }
        }
    }

    /// The value as text, as it is compared against log fields.
    var text: String? {
        switch self {
        case .string(let s): s
        case .int(let i): String(i)
        case .float(let d): d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
        case .bool(let b): b ? "true" : "false"
        case .null: nil
        }
    }

    var number: Double? {
        switch self {
        case .int(let i): Double(i)
        case .float(let d): d
        case .string(let s): Double(s)
        default: nil
        }
    }
}

/// Position of a construct in a rule file, for diagnostics.
package struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    package var file: String
    package var line: Int
    package var column: Int

    package init(file: String, line: Int, column: Int = 1) {
        self.file = file
        self.line = line
        self.column = column
    }

    package var description: String { "\(file):\(line):\(column)" }
}

/// Why a rule (or a part of it) cannot be used.
package struct RuleError: Error, Sendable, CustomStringConvertible, Equatable {
    package var location: SourceLocation
    package var message: String

    package init(_ location: SourceLocation, _ message: String) {
        self.location = location
        self.message = message
    }

    package var description: String { "\(location.file):\(location.line): \(message)" }
}

extension Node {
    package func location(_ file: String) -> SourceLocation {
        SourceLocation(file: file, line: mark?.line ?? 0, column: mark?.column ?? 0)
    }

    /// Key/value pairs of a mapping, in document order.
    package var pairs: [(key: String, keyNode: Node, value: Node)]? {
        guard case .mapping(let m) = self else { return nil }
        return m.map { (key: $0.key.string ?? "", keyNode: $0.key, value: $0.value) }
    }

    package func value(for key: String) -> Node? {
        guard case .mapping(let m) = self else { return nil }
        // By index: iterating a Yams mapping copies all its pairs into a new array first, and
        // `Node.string` goes through the tag's constructor. Keys here are plain scalars.
        for i in m.indices {
            if case .scalar(let k) = m[i].key, k.string == key { return m[i].value }
        }
        return nil
    }

    package var scalarText: String? {
        if case .scalar(let s) = self { return s.string }
        return nil
    }

    /// A string, or each string of a list of strings.
    package var stringList: [String] {
        switch self {
        case .scalar(let s): [s.string]
        case .sequence(let seq): seq.compactMap(\.scalarText)
        default: []
        }
    }
}
