import EventModel
import Findings

/// Deterministic triage, the default when no inference worker is configured and the fallback
/// whenever the worker's answer is not used. It ranks a finding from the evidence and explains it.
///
///     risk_score = min(100, base(level) + repeats + privileged + success_after_failure + novel_source)
///
/// - base(level): informational 10, low 25, medium 45, high 65, critical 85. This is also the
///   finding's floor: no triage, built-in or model, ranks it lower.
/// - repeats: min(15, 3 × ⌊log2 count⌋): 2 events +3, 4 +6, 8 +9, 16 +12, 32 or more +15.
/// - privileged: +10 when a user named is root (or uid 0) or the evidence touches sudoers or the
///   sudo, wheel or admin group.
/// - success_after_failure: +20 when the finding is a successful logon (ATT&CK T1078) from a source
///   that earlier findings of this run showed guessing credentials (credential-access tactic).
/// - novel_source: +5 when no earlier finding of this run named the source address.
///
/// The triager remembers up to `memory` sources per run; beyond that the oldest half is forgotten.
package struct BuiltinTriager: Sendable {
    private var seenSources: [String: UInt64] = [:]
    private var guessingSources: [String: UInt64] = [:]
    private var serial: UInt64 = 0
    private let memory: Int
    /// Screens evidence for injection and, in the same pass, for `privilegeWords`.
    private let screen = InjectionScreen(words: privilegeWords)

    package init(memory: Int = 100_000) {
        self.memory = max(2, memory)
    }

    package static func base(_ level: Severity) -> Int {
        switch level {
        case .informational: 10
        case .low: 25
        case .medium: 45
        case .high: 65
        case .critical: 85
        }
    }

    /// The evidence behind a score, kept for the explanation and for tests.
    package struct Evidence: Sendable, Equatable {
        package var repeats = 0
        package var privileged = false
        package var successAfterFailure = false
        package var novelSource = false
    }

    /// Scores, explains and screens `f` and returns the evidence used.
    @discardableResult
    package mutating func triage(_ f: inout Finding) -> Evidence {
        serial += 1
        var evidence = Evidence()
        let floor = Self.base(f.severity)
        if f.count > 1 { evidence.repeats = min(15, 3 * (Int.bitWidth - 1 - f.count.leadingZeroBitCount)) }
        // The screen's pass over each evidence message also finds the privilege words.
        let privilegedText = screen.flag(&f, accept: Self.touchesPrivilege)
        evidence.privileged = Self.namesRoot(f) || privilegedText
        let source = f.observables.first { $0.typeID == 2 }?.value
        if let source {
            evidence.novelSource = Self.remember(source, in: &seenSources, serial: serial, memory: memory)
            let isSuccess = f.rule.techniques.contains { $0.hasPrefix("T1078") }
            if isSuccess, guessingSources[source] != nil { evidence.successAfterFailure = true }
            if f.rule.tactics.contains("credential-access") { Self.remember(source, in: &guessingSources, serial: serial, memory: memory) }
        }
        var score = floor + evidence.repeats
        if evidence.privileged { score += 10 }
        if evidence.successAfterFailure { score += 20 }
        if evidence.novelSource { score += 5 }
        f.triage = .init(riskScore: min(100, score), source: "builtin")
        f.triage.floor = floor
        f.triage.explanation = explain(f, evidence)
        f.triage.remediation = remediation(f, evidence)
        return evidence
    }

    /// Screens `event` for `triage` now, while it is in cache (see `InjectionScreen.mark`).
    package func mark(_ event: inout Event) {
        screen.mark(&event)
    }

    /// A finding that gets no triage still carries its floor as its score.
    package static func untriaged(_ f: inout Finding) {
        let floor = base(f.severity)
        f.triage = .init(riskScore: floor, source: "none")
        f.triage.floor = floor
    }

    /// Remembers `source` as seen at `serial`; true when `table` did not hold it. The source is
    /// hashed once (twice only when the table is full).
    @discardableResult
    private static func remember(_ source: String, in table: inout [String: UInt64], serial: UInt64, memory: Int) -> Bool {
        if table.count >= memory, table[source] == nil {
            let cutoff = serial - UInt64(memory / 2)
            table = table.filter { $0.value > cutoff }
        }
        return table.updateValue(serial, forKey: source) == nil
    }

    /// Words that mark a message as touching privilege, with `touchesPrivilege` reading their bits.
    private static let privilegeWords = ["sudoers", "group", "sudo", "wheel", "admin"]

    /// Whether a message holding the `privilegeWords` in `words` (bit k: word k) touches
    /// privilege: it names sudoers, or a group and one of sudo, wheel or admin ("to group
    /// 'sudo'", "group wheel").
    private static func touchesPrivilege(_ words: UInt64) -> Bool {
        words & 0b1 != 0 || (words & 0b10 != 0 && words & 0b11100 != 0)
    }

    private static func namesRoot(_ f: Finding) -> Bool {
        f.observables.contains { $0.typeID == 4 && ($0.value == "root" || $0.value == "0" || $0.value == "#0") }
    }

    private func explain(_ f: Finding, _ e: Evidence) -> String {
        var s = TextBuilder(capacity: 256)
        s.append(f.rule.title)
        if f.count > 1 {
            s.append(": ")
            s.append(f.count)
            s.append(" events")
        }
        if let ip = f.observables.first(where: { $0.typeID == 2 }) {
            s.append(" from ")
            s.append(ip.value)
        }
        var users = 0
        for o in f.observables where o.typeID == 4 {
            s.append(users == 0 ? ", user " : ", ")
            s.append(o.value)
            users += 1
        }
        if let host = f.hostname {
            s.append(" on ")
            s.append(host)
        }
        for (k, technique) in f.rule.techniques.enumerated() {
            s.append(k == 0 ? " (ATT&CK " : ", ")
            s.append(technique)
        }
        if !f.rule.techniques.isEmpty { s.append(")") }
        s.append(".")
        if e.successAfterFailure { s.append(" The same source guessed credentials earlier and has now logged on.") }
        if e.privileged { s.append(" A privileged account or group is involved.") }
        if e.novelSource { s.append(" First finding from this source in this run.") }
        // Titles come from rules and observables are cleaned when extracted; the host name is the
        // one part read raw from the log, so a full clean runs only when a byte asks for it.
        let plain = s.bytes.withUnsafeBufferPointer(SafeText.isPrintableASCII)
        return plain ? s.string : SafeText.clean(s.bytes, limit: 1024)
    }

    private func remediation(_ f: Finding, _ e: Evidence) -> String {
        // A rule names a tactic or two: the list is searched as it is.
        let tactics = f.rule.tactics
        let ip = f.observables.first { $0.typeID == 2 }?.value
        if e.successAfterFailure {
            return
                "Treat the account as compromised until shown otherwise: review the session from \(ip ?? "the source"), rotate the credentials and block the source."
        }
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
