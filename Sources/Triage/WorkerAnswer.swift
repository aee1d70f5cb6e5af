import Findings
import Foundation

/// Why a worker request produced no usable answer.
package enum WorkerFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case unreachable(String)
    case loading
    case contextExceeded(String)
    case http(Int, String)
    case timeout
    case truncated
    case invalidResponse(String)
    case bodyTooLarge
    case circuitOpen(String)

    /// Whether repeating the same request may succeed.
    package var isTransient: Bool {
        switch self {
        case .unreachable, .loading, .timeout: true
        case .http(let status, _): status >= 500 || status == 429
        default: false
        }
    }

    /// Whether a smaller batch may succeed where this one did not.
    package var shrinks: Bool {
        switch self {
        case .contextExceeded, .truncated: true
        default: false
        }
    }

    package var description: String {
        switch self {
        case .unreachable(let why): "worker unreachable: \(why)"
        case .loading: "worker still loading its model (HTTP 503)"
        case .contextExceeded(let why): "prompt exceeds the worker's context: \(why)"
        case .http(let status, let why): "worker answered HTTP \(status)\(why.isEmpty ? "" : ": \(why)")"
        case .timeout: "worker did not answer in time"
        case .truncated: "worker's answer was cut at its token limit (finish_reason length)"
        case .invalidResponse(let why): "worker's answer is not valid: \(why)"
        case .bodyTooLarge: "worker's answer exceeds the size limit"
        case .circuitOpen(let why): "worker paused after repeated failures (\(why))"
        }
    }
}

/// One finding's assessment as the worker gave it, already checked against the schema.
package struct Assessment: Sendable, Equatable {
    package var riskScore: Int
    package var verdict: String
    package var confidence: Int
    package var explanation: String
    package var nextSteps: String
}

/// Reads a chat completions response and checks each finding's entry; nothing the model wrote is
/// trusted beyond what these checks allow.
package enum WorkerAnswer {
    /// The message content of a chat completions response, or why there is none usable.
    package static func content(of body: [UInt8]) -> Result<String, WorkerFailure> {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            return .failure(.invalidResponse("the response body is not a JSON object"))
        }
        guard let choices = object["choices"] as? [[String: Any]], let first = choices.first else {
            return .failure(.invalidResponse("the response has no choices"))
        }
        let finish = first["finish_reason"] as? String
        if finish == "length" { return .failure(.truncated) }
        guard let message = first["message"] as? [String: Any], let content = message["content"] as? String else {
            return .failure(.invalidResponse("the first choice has no message content"))
        }
        if let finish, finish != "stop" { return .failure(.invalidResponse("finish_reason \(SafeText.clean(finish, limit: 40))")) }
        return .success(content)
    }

    /// Per id: the assessment, or why the entry was rejected. Unknown ids in the answer are counted.
    package static func assessments(content: String, ids: [String]) -> (entries: [String: Result<Assessment, WorkerFailure>], unknown: Int)
    {
        guard let object = try? JSONSerialization.jsonObject(with: Data(content.utf8)) as? [String: Any] else {
            let failure = WorkerFailure.invalidResponse("the message content is not a JSON object")
            return (Dictionary(uniqueKeysWithValues: ids.map { ($0, .failure(failure)) }), 0)
        }
        let expected = Set(ids)
        let unknown = object.keys.filter { !expected.contains($0) }.count
        var out: [String: Result<Assessment, WorkerFailure>] = [:]
        for id in ids {
            guard let entry = object[id] else {
                out[id] = .failure(.invalidResponse("no entry for this finding"))
                continue
            }
            out[id] = check(entry)
        }
        return (out, unknown)
    }

    private static func check(_ value: Any) -> Result<Assessment, WorkerFailure> {
        func bad(_ why: String) -> Result<Assessment, WorkerFailure> { .failure(.invalidResponse(why)) }
        guard let e = value as? [String: Any] else { return bad("the entry is not an object") }
        guard let risk = integer(e["risk_score"]) else { return bad("risk_score is not an integer") }
        guard (0...100).contains(risk) else { return bad("risk_score \(risk) is outside 0-100") }
        guard let confidence = integer(e["confidence"]) else { return bad("confidence is not an integer") }
        guard (0...100).contains(confidence) else { return bad("confidence \(confidence) is outside 0-100") }
        guard let verdict = e["verdict"] as? String, WorkerPrompt.verdicts.contains(verdict) else {
            return bad("verdict is not one of the allowed values")
        }
        guard let explanation = e["explanation"] as? String else { return bad("explanation is not a string") }
        let cleanExplanation = SafeText.clean(explanation, limit: WorkerPrompt.explanationLimit * 2)
        guard words(cleanExplanation) >= 2 else { return bad("explanation has no words") }
        guard let next = e["next_steps"] as? String else { return bad("next_steps is not a string") }
        var cleanNext = SafeText.clean(next, limit: WorkerPrompt.nextStepsLimit * 2)
        if words(cleanNext) < 2 { cleanNext = "" }
        return .success(
            Assessment(riskScore: risk, verdict: verdict, confidence: confidence, explanation: cleanExplanation, nextSteps: cleanNext))
    }

    /// Runs of two or more letters: punctuation soup and bare numbers count zero.
    private static func words(_ s: String) -> Int {
        var count = 0
        var run = 0
        for c in s.unicodeScalars {
            if c.properties.isAlphabetic {
                run += 1
                if run == 2 { count += 1 }
            } else {
                run = 0
            }
        }
        return count
    }

    /// JSON numbers that are whole: 7 and 7.0, not 7.5, not true, not "7".
    private static func integer(_ v: Any?) -> Int? {
        // `is Bool` holds for any NSNumber of 0 or 1; the boxed type tells booleans apart ("c").
        guard let n = v as? NSNumber, String(cString: n.objCType) != "c" else { return nil }
        let d = n.doubleValue
        guard d.isFinite, d.rounded() == d, abs(d) < 1e9 else { return nil }
        return Int(d)
    }

    /// Applies an accepted assessment: the model's score is held within `band` of the built-in one
    /// and never below the rule's floor; the finding becomes an update carrying the model's words.
    package static func apply(_ a: Assessment, to f: inout Finding, band: Int, model: String, provider: String?) {
        let builtin = f.triage.riskScore
        let floor = f.triage.floor
        let bounded = min(100, max(floor, min(builtin + band, max(builtin - band, a.riskScore))))
        var triage = Finding.Triage(riskScore: bounded, source: "worker")
        triage.floor = floor
        triage.explanation = a.explanation
        triage.remediation = a.nextSteps.isEmpty ? f.triage.remediation : a.nextSteps
        triage.confidence = a.confidence
        triage.verdict = a.verdict
        triage.model = model
        triage.provider = provider
        if bounded != a.riskScore {
            triage.note = "model proposed risk \(a.riskScore); held to \(bounded) (built-in \(builtin) ±\(band), floor \(floor))"
        }
        f.triage = triage
        f.activity = .update
    }

    /// Keeps the built-in triage and says why the model's is missing.
    package static func keepBuiltin(_ f: inout Finding, because reason: String) {
        f.triage.note = "built-in triage kept: " + reason
        f.activity = .update
    }
}
