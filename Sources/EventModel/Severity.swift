/// Sigma rule levels, ordered from least to most severe.
package enum Severity: Int, Sendable, Comparable, CaseIterable, Codable {
    case informational = 1
    case low = 2
    case medium = 3
    case high = 4
    case critical = 5

    package init?(sigmaLevel: String) {
        switch sigmaLevel.lowercased() {
        case "informational": self = .informational
        case "low": self = .low
        case "medium": self = .medium
        case "high": self = .high
        case "critical": self = .critical
        default: return nil
        }
    }

    package var name: String {
        switch self {
        case .informational: "informational"
        case .low: "low"
        case .medium: "medium"
        case .high: "high"
        case .critical: "critical"
        }
    }

    /// The name as OCSF's `severity` writes it.
    package var ocsfName: String {
        switch self {
        case .informational: "Informational"
        case .low: "Low"
        case .medium: "Medium"
        case .high: "High"
        case .critical: "Critical"
        }
    }

    /// OCSF `severity_id`: 1 Informational … 5 Critical.
    package var ocsfID: Int { rawValue }

    package static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rawValue < rhs.rawValue }
}
