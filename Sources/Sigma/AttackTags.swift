/// MITRE ATT&CK references in Sigma tags.
package enum AttackTags {
    /// Technique ids: `attack.t1110.001` → `T1110.001`.
    package static func techniques(_ tags: [String]) -> [String] {
        tags.compactMap { tag in
            let lower = tag.lowercased()
            guard lower.hasPrefix("attack.t"), lower.dropFirst(8).first?.isNumber == true else { return nil }
            return "T" + lower.dropFirst(8)
        }
    }

    /// Tactic names: `attack.credential-access` → `credential-access` (ids of techniques, groups and software are not tactics).
    package static func tactics(_ tags: [String]) -> [String] {
        tags.compactMap { tag in
            let lower = tag.lowercased()
            guard lower.hasPrefix("attack.") else { return nil }
            let name = lower.dropFirst(7)
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0 == "-" }) else { return nil }
            return String(name)
        }
    }
}
