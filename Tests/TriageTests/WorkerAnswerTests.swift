import Findings
import TestSupport
import Testing

@testable import Triage

@Suite("Worker answers")
struct WorkerAnswerTests {
    static let good =
        #"{"verdict":"malicious","risk_score":80,"confidence":70,"explanation":"Password guessing for root, see e1.","next_steps":"Block the source address."}"#

    @Test(
        "each entry is checked; a bad entry costs only its own finding",
        arguments: [
            (#"{"f1":\#(good)}"#, nil),
            (
                #"{"f1":{"verdict":"malicious","risk_score":150,"confidence":70,"explanation":"Password guessing for root.","next_steps":"Block it."}}"#,
                "outside 0-100"
            ),
            (
                #"{"f1":{"verdict":"malicious","risk_score":-1,"confidence":70,"explanation":"Password guessing for root.","next_steps":"Block it."}}"#,
                "outside 0-100"
            ),
            (
                #"{"f1":{"verdict":"malicious","risk_score":7.5,"confidence":70,"explanation":"Password guessing for root.","next_steps":"Block it."}}"#,
                "not an integer"
            ),
            (
                #"{"f1":{"verdict":"malicious","risk_score":true,"confidence":70,"explanation":"Password guessing for root.","next_steps":"Block it."}}"#,
                "not an integer"
            ),
            (
                #"{"f1":{"verdict":"malicious","risk_score":"80","confidence":70,"explanation":"Password guessing for root.","next_steps":"Block it."}}"#,
                "not an integer"
            ),
            (
                #"{"f1":{"verdict":"ignore","risk_score":80,"confidence":70,"explanation":"Password guessing for root.","next_steps":"Block it."}}"#,
                "verdict"
            ),
            (
                #"{"f1":{"verdict":"benign","risk_score":80,"confidence":101,"explanation":"Password guessing for root.","next_steps":"Block it."}}"#,
                "confidence"
            ),
            (#"{"f1":{"verdict":"benign","risk_score":80,"confidence":1,"explanation":", , ,","next_steps":"Block it."}}"#, "no words"),
            (#"{"f1":"malicious"}"#, "not an object"),
            (#"{"f2":\#(good)}"#, "no entry"),
            (#"not json"#, "not a JSON object"),
        ] as [(String, String?)])
    func entries(content: String, problem: String?) {
        let (entries, _) = WorkerAnswer.assessments(content: content, ids: ["f1"])
        switch entries["f1"] {
        case .success(let a)?:
            #expect(problem == nil)
            #expect(a.riskScore == 80 && a.verdict == "malicious" && a.confidence == 70)
        case .failure(let f)?:
            #expect(problem != nil && f.description.contains(problem!), "\(f)")
        case nil:
            Issue.record("no outcome for f1")
        }
    }

    @Test("unknown ids are counted and ignored")
    func unknownIDs() {
        let (entries, unknown) = WorkerAnswer.assessments(content: #"{"f1":\#(Self.good),"f9":\#(Self.good),"x":1}"#, ids: ["f1"])
        #expect(unknown == 2)
        #expect(entries.count == 1)
    }

    @Test(
        "the response envelope: finish_reason length and missing content fail the batch",
        arguments: [
            (ScriptedWorker.completion("{}", finish: "length"), WorkerFailure.truncated),
            (#"{"choices":[]}"#, WorkerFailure.invalidResponse("the response has no choices")),
            ("<html>", WorkerFailure.invalidResponse("the response body is not a JSON object")),
        ])
    func envelope(body: String, failure: WorkerFailure) {
        #expect(WorkerAnswer.content(of: Array(body.utf8)) == .failure(failure))
    }

    @Test(
        "the model moves the score only within the band and never below the floor",
        arguments: [
            // builtin, floor, proposed → kept
            (50, 45, 60, 60),
            (50, 45, 99, 70),
            (50, 45, 0, 45),
            (90, 85, 0, 85),
            (95, 85, 100, 100),
            (30, 25, 5, 25),
        ])
    func band(builtin: Int, floor: Int, proposed: Int, kept: Int) throws {
        var f = try #require(
            try Fixtures.findings(["Mar 10 09:00:01 web1 sshd[100]: Failed password for root from 203.0.113.9 port 22 ssh2"]).first)
        f.triage.riskScore = builtin
        f.triage.floor = floor
        let a = Assessment(
            riskScore: proposed, verdict: "benign", confidence: 90, explanation: "Looks routine to me.", nextSteps: "Nothing to do.")
        WorkerAnswer.apply(a, to: &f, band: 20, model: "m", provider: "p")
        #expect(f.triage.riskScore == kept)
        #expect(f.triage.source == "worker")
        #expect(f.activity == .update)
        #expect(f.triage.model == "m" && f.triage.provider == "p")
        #expect((f.triage.note != nil) == (kept != proposed))
    }

    @Test(
        "HTTP errors map to what the triager does about them",
        arguments: [
            (503, #"{"error":{"message":"Loading model","type":"unavailable_error","code":503}}"#, WorkerFailure.loading),
            (
                400,
                #"{"error":{"code":400,"message":"request (51599 tokens) exceeds the available context size (2048 tokens), try increasing it","type":"exceed_context_size_error"}}"#,
                WorkerFailure.contextExceeded(
                    "request (51599 tokens) exceeds the available context size (2048 tokens), try increasing it")
            ),
            (500, #"{"error":{"message":"boom"}}"#, WorkerFailure.http(500, "boom")),
            (401, "", WorkerFailure.http(401, "")),
        ])
    func classify(status: Int, body: String, failure: WorkerFailure) {
        let f = WorkerClient.classify(status: status, body: Array(body.utf8))
        #expect(f == failure)
        #expect(f.isTransient == (status >= 500))
    }
}

@Suite("Triage queue")
struct TriageQueueTests {
    static func finding(risk: Int) throws -> Finding {
        var f = try #require(
            try Fixtures.findings(["Mar 10 09:00:01 web1 sshd[100]: Failed password for root from 203.0.113.9 port 22 ssh2"]).first)
        f.triage.riskScore = risk
        return f
    }

    @Test("most severe first, full batches at once, a partial batch after the wait")
    func order() throws {
        let q = TriageQueue(capacity: 10)
        let now = ContinuousClock.now
        for risk in [30, 90, 50, 70] { #expect(q.offer(try Self.finding(risk: risk), now: now, deadline: .seconds(60)) == nil) }
        let first = q.take(batchSize: 3, maxWait: .seconds(5), now: now)
        #expect(first.batch.map(\.priority) == [90, 70, 50])
        q.settled()
        #expect(q.take(batchSize: 3, maxWait: .seconds(5), now: now).batch.isEmpty)
        let later = q.take(batchSize: 3, maxWait: .seconds(5), now: now + .seconds(6))
        #expect(later.batch.map(\.priority) == [30])
        q.settled()
        q.finish()
        #expect(q.take(batchSize: 3, maxWait: .seconds(5), now: now).done)
    }

    @Test("a full queue sheds the least severe; expired findings come back as expired")
    func shedding() throws {
        let q = TriageQueue(capacity: 2)
        let now = ContinuousClock.now
        #expect(q.offer(try Self.finding(risk: 40), now: now, deadline: .seconds(1)) == nil)
        #expect(q.offer(try Self.finding(risk: 60), now: now, deadline: .seconds(60)) == nil)
        #expect(q.offer(try Self.finding(risk: 20), now: now, deadline: .seconds(60))?.triage.riskScore == 20)
        #expect(q.offer(try Self.finding(risk: 80), now: now, deadline: .seconds(60))?.triage.riskScore == 40)
        let t = q.take(batchSize: 5, maxWait: .seconds(30), now: now + .seconds(2))
        #expect(t.expired.isEmpty)
        #expect(t.batch.isEmpty)
        let q2 = TriageQueue(capacity: 2)
        _ = q2.offer(try Self.finding(risk: 40), now: now, deadline: .seconds(1))
        let t2 = q2.take(batchSize: 5, maxWait: .seconds(30), now: now + .seconds(2))
        #expect(t2.expired.map(\.priority) == [40])
    }
}
