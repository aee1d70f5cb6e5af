import EventModel

/// Output schemas for findings.
package enum FindingFormat: String, Sendable, CaseIterable {
    case ocsf
    case ecs
}

/// Encodes findings as one JSON object per line.
package struct FindingEncoder: Sendable {
    package let format: FindingFormat
    package let productVersion: String
    /// Fields of each evidence event written out; others are left out to keep lines small.
    package var evidenceFieldLimit = 32
    package var evidenceValueLimit = 4096
    /// The OCSF `metadata` member, the same in every finding.
    private let metadata: [UInt8]

    package init(format: FindingFormat, productVersion: String) {
        self.format = format
        self.productVersion = productVersion
        var w = JSONWriter()
        w.beginObject("metadata")
        w.field("version", "1.3.0")
        w.beginObject("product")
        w.field("name", "logtriage")
        w.field("vendor_name", "logtriage")
        w.field("version", productVersion)
        w.endObject()
        w.field("log_name", "findings")
        w.endObject()
        metadata = w.bytes
    }

    package func encode(_ f: Finding) -> [UInt8] {
        var w = JSONWriter()
        encode(f, into: &w)
        return w.bytes
    }

    /// Appends the finding's JSON line, newline included, to `w`. A caller that encodes many
    /// findings reuses one writer (`removeAll` between lines) and so its buffer.
    package func encode(_ f: Finding, into w: inout JSONWriter) {
        switch format {
        case .ocsf: ocsf(f, &w)
        case .ecs: ecs(f, &w)
        }
        w.newline()
    }

    private static func ms(_ micros: Int64) -> Int64 { micros / 1000 }

    private func ocsf(_ f: Finding, _ w: inout JSONWriter) {
        let sev = f.severity
        w.beginObject()
        w.field("activity_id", f.activity.rawValue)
        w.field("activity_name", f.activity == .create ? "Create" : "Update")
        w.field("category_uid", 2)
        w.field("category_name", "Findings")
        w.field("class_uid", 2004)
        w.field("class_name", "Detection Finding")
        w.field("type_uid", 200400 + f.activity.rawValue)
        w.field("time", Self.ms(f.lastSeen))
        w.field("severity_id", sev.ocsfID)
        w.field("severity", sev.ocsfName)
        w.field("status_id", 1)
        w.field("status", "New")
        message(f, &w)
        w.field("count", f.count)
        w.field("risk_score", f.triage.riskScore)
        w.field("risk_level", riskLevel(f.triage.riskScore))
        if let c = f.triage.confidence { w.field("confidence_score", c) }
        w.beginObject("finding_info")
        w.field("uid", f.uid)
        w.field("title", f.rule.title)
        w.field("desc", f.triage.explanation ?? f.rule.description)
        w.members(f.rule.fragments.ocsfAnalytic)
        w.field("first_seen_time", Self.ms(f.firstSeen))
        w.field("last_seen_time", Self.ms(f.lastSeen))
        w.members(f.rule.fragments.ocsfTypes)
        w.endObject()
        if let remediation = f.triage.remediation {
            w.beginObject("remediation")
            w.field("desc", remediation)
            w.endObject()
        }
        observables(f, &w)
        w.beginArray("evidences")
        for e in f.evidences { evidence(e, &w) }
        w.endArray()
        w.beginObject("device")
        w.field("hostname", f.hostname ?? "unknown")
        w.field("type_id", 0)
        w.endObject()
        w.members(metadata)
        if let model = f.triage.model {
            w.beginObject("ai_model")
            w.field("name", model)
            w.field("provider", f.triage.provider)
            w.endObject()
        }
        w.beginObject("unmapped")
        w.members(f.rule.fragments.ocsfSigma)
        w.beginObject("triage")
        w.field("source", f.triage.source)
        w.field("note", f.triage.note)
        w.field("verdict", f.triage.verdict)
        w.field("risk_floor", f.triage.floor)
        if !f.injection.isEmpty { w.field("prompt_injection", strings: f.injection) }
        w.endObject()
        w.endObject()
        w.endObject()
    }

    private func riskLevel(_ score: Int) -> String {
        switch score {
        case ..<20: "Info"
        case ..<40: "Low"
        case ..<60: "Medium"
        case ..<80: "High"
        default: "Critical"
        }
    }

    /// The `message` member, `title (name=value, …) ×count`: the rule's title, the source
    /// address and users, and the number of events when more than one. Written in parts.
    private func message(_ f: Finding, _ w: inout JSONWriter) {
        w.beginString("message")
        w.stringPart(f.rule.title)
        var first = true
        for o in f.observables where o.typeID == 2 || o.typeID == 4 {
            w.stringPart(first ? " (" as StaticString : ", ")
            first = false
            w.stringPart(o.name)
            w.stringPart("=")
            w.stringPart(o.value)
        }
        if !first { w.stringPart(")") }
        if f.count > 1 {
            w.stringPart(" ×")
            w.stringPart(decimal: f.count)
        }
        w.endString()
    }

    private func observables(_ f: Finding, _ w: inout JSONWriter) {
        w.beginArray("observables")
        for o in f.observables {
            w.beginObject()
            w.field("name", o.name)
            w.field("type_id", o.typeID)
            w.field("value", o.value)
            w.endObject()
        }
        w.endArray()
    }

    private func evidence(_ e: Event, _ w: inout JSONWriter) {
        w.beginObject()
        w.beginObject("data")
        var written = 0
        e.fields.forEach { name, value in
            guard written < evidenceFieldLimit else { return false }
            var name = name
            name.withUTF8 { key in
                // Fields starting with two underscores are journald's own, except the cursor.
                if key.count > 1, key[0] == 95, key[1] == 95, !key.elementsEqual(FieldName.cursor.utf8) { return }
                w.field(key: key, bytes: UnsafeBufferPointer(rebasing: value.prefix(evidenceValueLimit)))
                written += 1
            }
            return true
        }
        w.endObject()
        w.beginObject("src")
        w.field("path", e.position.source)
        w.field("line", e.position.line)
        w.field("offset", Int64(e.position.offset))
        w.field("cursor", e.position.cursor)
        w.endObject()
        if let t = e.time { w.field("time", Self.ms(t)) }
        w.endObject()
    }

    private func ecs(_ f: Finding, _ w: inout JSONWriter) {
        w.beginObject()
        w.field("@timestamp", CivilTime.rfc3339(micros: f.lastSeen))
        message(f, &w)
        w.beginObject("ecs")
        w.field("version", "8.11.0")
        w.endObject()
        w.beginObject("event")
        w.field("kind", "alert")
        w.field("category", strings: ["intrusion_detection"])
        w.field("type", strings: ["indicator"])
        w.field("id", f.uid)
        w.field("action", f.activity == .create ? "created" : "updated")
        w.field("severity", f.severity.rawValue)
        w.field("risk_score", f.triage.riskScore)
        w.field("start", CivilTime.rfc3339(micros: f.firstSeen))
        w.field("end", CivilTime.rfc3339(micros: f.lastSeen))
        w.field("dataset", "logtriage.finding")
        w.field("provider", "logtriage")
        w.field("reason", f.triage.explanation)
        w.endObject()
        w.members(f.rule.fragments.ecsRule)
        if let ip = f.observables.first(where: { $0.typeID == 2 }) {
            w.beginObject("source")
            w.field("ip", ip.value)
            w.endObject()
        }
        if let user = f.observables.first(where: { $0.typeID == 4 }) {
            w.beginObject("user")
            w.field("name", user.value)
            w.endObject()
        }
        w.beginObject("host")
        w.field("hostname", f.hostname ?? "unknown")
        w.endObject()
        if let p = f.observables.first(where: { $0.typeID == 9 }) {
            w.beginObject("process")
            w.field("name", p.value)
            w.endObject()
        }
        w.members(f.rule.fragments.ecsThreat)
        w.beginObject("logtriage")
        w.field("count", f.count)
        w.field("level", f.rule.level.name)
        w.field("triage", f.triage.source)
        w.field("triage_note", f.triage.note)
        w.field("verdict", f.triage.verdict)
        w.field("confidence", f.triage.confidence)
        w.field("risk_floor", f.triage.floor)
        w.field("ai_model", f.triage.model)
        if !f.injection.isEmpty { w.field("prompt_injection", strings: f.injection) }
        w.field("remediation", f.triage.remediation)
        w.beginArray("evidence")
        for e in f.evidences { evidence(e, &w) }
        w.endArray()
        w.endObject()
        w.endObject()
    }
}

/// The members of a finding that depend on its rule alone, encoded once per rule instead of once
/// per finding: each holds `"key":value` members, comma-separated, to go inside an object.
package final class RuleFragments: Sendable {
    /// OCSF `finding_info.analytic` and `finding_info.attacks`.
    let ocsfAnalytic: [UInt8]
    /// OCSF `finding_info.types`.
    let ocsfTypes: [UInt8]
    /// OCSF `unmapped.sigma`.
    let ocsfSigma: [UInt8]
    /// ECS `rule`.
    let ecsRule: [UInt8]
    /// ECS `threat`; empty when the rule names no ATT&CK technique.
    let ecsThreat: [UInt8]

    init(_ rule: RuleSummary.Facts) {
        var w = JSONWriter()
        w.beginObject("analytic")
        w.field("uid", rule.id)
        w.field("name", rule.title)
        w.field("type_id", 1)
        w.field("type", "Rule")
        w.field("desc", rule.description)
        w.endObject()
        w.beginArray("attacks")
        for t in rule.techniques {
            w.beginObject()
            w.beginObject("technique")
            w.field("uid", t)
            w.endObject()
            if let tactic = rule.tactics.first {
                w.beginObject("tactic")
                w.field("name", tactic)
                w.endObject()
            }
            w.field("version", "19")
            w.endObject()
        }
        w.endArray()
        ocsfAnalytic = w.take()

        w.field("types", strings: rule.tags)
        ocsfTypes = w.take()

        w.beginObject("sigma")
        w.field("author", rule.author ?? "unknown")
        w.field("level", rule.level.name)
        w.field("status", rule.status)
        w.field("references", strings: rule.references)
        w.field("falsepositives", strings: rule.falsePositives)
        w.field("file", rule.file)
        w.endObject()
        ocsfSigma = w.take()

        w.beginObject("rule")
        w.field("id", rule.id)
        w.field("uuid", rule.id)
        w.field("name", rule.title)
        w.field("description", rule.description)
        w.field("author", strings: [rule.author ?? "unknown"])
        w.field("ruleset", "sigma")
        w.field("reference", rule.references.first)
        w.endObject()
        ecsRule = w.take()

        if !rule.techniques.isEmpty {
            w.beginObject("threat")
            w.field("framework", "MITRE ATT&CK")
            w.beginArray("technique")
            for t in rule.techniques {
                w.beginObject()
                w.field("id", t)
                w.endObject()
            }
            w.endArray()
            w.endObject()
        }
        ecsThreat = w.take()
    }
}
