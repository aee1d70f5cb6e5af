import EventModel
import Findings

/// Deterministic triage used when no inference worker is configured: ranks a finding from its
/// rule level, how often it repeated and whether it touches a privileged account, and explains
/// it from the evidence.
///
/// risk_score = base(level) + min(15, 3 × ⌊log2(count)⌋) + 5 if the user is root or uid 0, capped at 100,
/// with base informational 10, low 25, medium 45, high 65, critical 85.
package struct BuiltinTriager: Sendable {
    package init() {}

    package static func base(_ level: Severity) -> Int {
        switch level {
        case .informational: 10
        case .low: 25
        case .medium: 45
        case .high: 65
        case .critical: 85
        }
    }

    package func triage(_ f: inout Finding) {
        var score = Self.base(f.severity)
        if f.count > 1 { score += min(15, 3 * (Int.bitWidth - 1 - f.count.leadingZeroBitCount)) }
        let users = f.observables.filter { $0.typeID == 4 }.map(\.value)
        let privileged = users.contains { $0 == "root" || $0 == "0" || $0 == "#0" }
        if privileged { score += 5 }
        f.triage.riskScore = min(100, score)
        f.triage.source = "builtin"
        f.triage.confidence = nil

        var sentence = "\(f.rule.title)"
        if f.count > 1 { sentence += ", \(f.count) times" }
        if let ip = f.observables.first(where: { $0.typeID == 2 }) { sentence += ", from \(ip.value)" }
        if !users.isEmpty { sentence += ", user \(users.joined(separator: ", "))" }
        if let host = f.hostname { sentence += ", on \(host)" }
        if !f.rule.techniques.isEmpty { sentence += " (ATT&CK \(f.rule.techniques.joined(separator: ", ")))" }
        sentence += "."
        if privileged { sentence += " The target is a privileged account." }
        f.triage.explanation = sentence
        f.triage.remediation = remediation(f)
    }

    private func remediation(_ f: Finding) -> String {
        let tactics = Set(f.rule.tactics)
        let ip = f.observables.first { $0.typeID == 2 }?.value
        if tactics.contains("credential-access") || f.rule.techniques.contains(where: { $0.hasPrefix("T1110") }) {
            return
                "Check whether any login from \(ip ?? "the source") succeeded; block the source if it is not expected; enforce key-only SSH and lockout."
        }
        if tactics.contains("persistence") {
            return "Confirm the change with its owner; review new accounts, keys, services and cron entries on the host."
        }
        if tactics.contains("privilege-escalation") {
            return "Confirm the privileged action was authorised; review sudoers and group membership changes."
        }
        if tactics.contains("defense-impairment") || tactics.contains("stealth") || tactics.contains("defense-evasion") {
            return "Treat as possible tampering: verify logging and security services are running and compare logs with a remote copy."
        }
        return "Review the evidence lines and the surrounding activity on the host."
    }
}
