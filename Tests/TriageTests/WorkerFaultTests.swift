import Findings
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Triage

/// The triager against a real HTTP server that misbehaves on purpose. Every test checks the
/// invariant that matters: each finding submitted comes back exactly once, by its deadline,
/// never below its floor, and says which triage it got and why.
@Suite("Worker faults", .serialized)
struct WorkerFaultTests {
    static let entry =
        #"{"verdict":"suspicious","risk_score":55,"confidence":60,"explanation":"Repeated password failures, see e1.","next_steps":"Check the source."}"#

    static let overreach =
        #"{"verdict":"malicious","risk_score":400,"confidence":5,"explanation":"Too high to be true.","next_steps":"Panic now."}"#

    final class Delivered: Sendable {
        let items = Mutex<[(Finding, ContinuousClock.Instant)]>([])
        var findings: [Finding] { items.withLock { $0.map(\.0) } }
        var latest: ContinuousClock.Instant? { items.withLock { $0.map(\.1).max() } }
    }

    static func findings(_ n: Int) throws -> [Finding] {
        let lines = (0..<n).map {
            "Mar 10 09:00:\(String(format: "%02d", $0)) web\($0) sshd[\(100 + $0)]: Failed password for user\($0) from 203.0.113.\($0 + 1) port 22 ssh2"
        }
        let out = try Fixtures.findings(lines)
        #expect(out.count == n)
        return out
    }

    struct Run {
        var delivered: [Finding]
        var statistics: WorkerTriager.Statistics
        var started: ContinuousClock.Instant
        var finished: ContinuousClock.Instant
    }

    static func run(
        _ url: String, findings: [Finding], hold: Bool = false, configure: (inout WorkerConfiguration) -> Void = { _ in }
    ) async -> Run {
        var c = WorkerConfiguration(baseURL: url)
        c.model = "scripted"
        c.batchSize = 2
        c.concurrency = 1
        c.maxWait = .milliseconds(20)
        c.retryBackoff = .milliseconds(10)
        c.requestTimeout = .seconds(5)
        // Long enough that a busy CI machine (other suites block the shared thread pool for
        // seconds at a time) never turns a retry or a split into a deadline fallback.
        c.deadline = .seconds(300)
        configure(&c)
        let delivered = Delivered()
        let client = WorkerClient(configuration: c)
        let triager = WorkerTriager(client: client, model: "scripted", provider: "test", hold: hold) { f in
            delivered.items.withLock { $0.append((f, .now)) }
        }
        let started = ContinuousClock.now
        for f in findings { triager.submit(f) }
        triager.finish()
        await triager.run()
        await client.shutdown()
        return Run(delivered: delivered.findings, statistics: triager.statistics, started: started, finished: .now)
    }

    /// The invariant every scenario keeps.
    static func checkEveryFindingOnce(_ r: Run, _ findings: [Finding], hold: Bool = false) {
        #expect(r.delivered.count == findings.count)
        #expect(Set(r.delivered.map(\.uid)) == Set(findings.map(\.uid)))
        for f in r.delivered {
            #expect(f.triage.riskScore >= f.triage.floor && f.triage.riskScore <= 100)
            #expect(f.activity == (hold ? .create : .update))
            if f.triage.source == "worker" {
                #expect(f.triage.model == "scripted")
            } else {
                #expect(f.triage.source == "builtin")
                #expect(f.triage.note?.hasPrefix("built-in triage kept: ") == true)
            }
        }
        #expect(r.statistics.modelTriaged + r.statistics.keptBuiltin == findings.count)
    }

    @Test("a healthy worker triages every finding")
    func healthy() async throws {
        let worker = try await ScriptedWorker { body, _ in ScriptedWorker.answer(body) { _ in Self.entry } }
        defer { Task { await worker.shutdown() } }
        let findings = try Self.findings(5)
        let r = await Self.run(worker.baseURL, findings: findings)
        Self.checkEveryFindingOnce(r, findings)
        #expect(r.statistics.modelTriaged == 5)
        #expect(worker.requests == 3)
        #expect(r.delivered.allSatisfy { $0.triage.verdict == "suspicious" && $0.triage.explanation?.contains("e1") == true })
    }

    @Test("refused connection: retried, then built-in triage saying the worker is unreachable")
    func refused() async throws {
        let findings = try Self.findings(3)
        let r = await Self.run("http://127.0.0.1:9/v1", findings: findings)
        Self.checkEveryFindingOnce(r, findings)
        #expect(r.statistics.keptBuiltin == 3)
        #expect(r.statistics.retries >= 2)
        #expect(r.delivered.allSatisfy { $0.triage.note?.contains("unreachable") == true })
    }

    @Test("503 while the model loads: retried until it answers")
    func loading() async throws {
        let worker = try await ScriptedWorker { body, i in
            i < 2
                ? .json(status: 503, body: #"{"error":{"message":"Loading model","type":"unavailable_error","code":503}}"#)
                : ScriptedWorker.answer(body) { _ in Self.entry }
        }
        defer { Task { await worker.shutdown() } }
        let findings = try Self.findings(2)
        let r = await Self.run(worker.baseURL, findings: findings)
        Self.checkEveryFindingOnce(r, findings)
        #expect(r.statistics.modelTriaged == 2)
        #expect(r.statistics.retries == 2)
    }

    @Test("400 context exceeded: the batch is split until it fits")
    func contextExceeded() async throws {
        let worker = try await ScriptedWorker { body, _ in
            ScriptedWorker.ids(in: body).count > 1
                ? .json(
                    status: 400,
                    body:
                        #"{"error":{"code":400,"message":"request (9000 tokens) exceeds the available context size (2048 tokens)","type":"exceed_context_size_error"}}"#
                )
                : ScriptedWorker.answer(body) { _ in Self.entry }
        }
        defer { Task { await worker.shutdown() } }
        let findings = try Self.findings(4)
        let r = await Self.run(worker.baseURL, findings: findings) { $0.batchSize = 4 }
        Self.checkEveryFindingOnce(r, findings)
        #expect(r.statistics.modelTriaged == 4)
        #expect(r.statistics.splits == 3)
    }

    @Test("500 every time: built-in triage, and the breaker stops calling after three failed batches")
    func serverError() async throws {
        let worker = try await ScriptedWorker { _, _ in .json(status: 500, body: #"{"error":{"message":"internal"}}"#) }
        defer { Task { await worker.shutdown() } }
        let findings = try Self.findings(6)
        let r = await Self.run(worker.baseURL, findings: findings) {
            $0.batchSize = 1
            $0.retries = 1
        }
        Self.checkEveryFindingOnce(r, findings)
        #expect(r.statistics.keptBuiltin == 6)
        #expect(r.statistics.reasons["HTTP 500"] == 3)
        #expect(r.statistics.reasons["circuit open"] == 3)
        #expect(worker.requests == 6)  // three batches, each tried twice; none after the breaker opened
    }

    @Test("a response that never ends and a worker that never answers are cut at the timeout")
    func endless() async throws {
        for reply in [ScriptedWorker.Reply.endlessBody, .silence] {
            let worker = try await ScriptedWorker { _, _ in reply }
            let findings = try Self.findings(2)
            let r = await Self.run(worker.baseURL, findings: findings) {
                $0.requestTimeout = .milliseconds(300)
                $0.retries = 1
            }
            await worker.shutdown()
            Self.checkEveryFindingOnce(r, findings)
            #expect(r.delivered.allSatisfy { $0.triage.note?.contains("did not answer in time") == true })
            // Two attempts of 300 ms and a backoff: cut long before the 300 s deadline.
            #expect(r.finished - r.started < .seconds(30))
        }
    }

    @Test("the deadline bounds the wait even when the request timeout is longer")
    func deadline() async throws {
        let worker = try await ScriptedWorker { _, _ in .silence }
        defer { Task { await worker.shutdown() } }
        let findings = try Self.findings(2)
        let r = await Self.run(worker.baseURL, findings: findings, hold: true) {
            $0.requestTimeout = .seconds(60)
            $0.deadline = .milliseconds(600)
        }
        Self.checkEveryFindingOnce(r, findings, hold: true)
        #expect(r.finished - r.started < .seconds(30))
    }

    @Test(
        "answers that parse but are wrong keep built-in triage, per finding",
        arguments: [
            ("not json at all", "not a JSON object"),
            (#"{"f7":\#(entry)}"#, "no entry for this finding"),
            (
                #"{"f1":\#(overreach),"f2":\#(overreach)}"#,
                "outside 0-100"
            ),
        ])
    func wrongAnswers(content: String, reason: String) async throws {
        let worker = try await ScriptedWorker { _, _ in .json(status: 200, body: ScriptedWorker.completion(content)) }
        defer { Task { await worker.shutdown() } }
        let findings = try Self.findings(2)
        let r = await Self.run(worker.baseURL, findings: findings)
        Self.checkEveryFindingOnce(r, findings)
        #expect(r.statistics.keptBuiltin == 2)
        #expect(r.delivered.allSatisfy { $0.triage.note?.contains(reason) == true })
    }

    @Test("finish_reason length: split down to single findings, then built-in triage")
    func truncated() async throws {
        let worker = try await ScriptedWorker { _, _ in .json(status: 200, body: ScriptedWorker.completion("{\"f1\":{", finish: "length")) }
        defer { Task { await worker.shutdown() } }
        let findings = try Self.findings(2)
        let r = await Self.run(worker.baseURL, findings: findings)
        Self.checkEveryFindingOnce(r, findings)
        #expect(r.statistics.splits == 1)
        #expect(r.delivered.allSatisfy { $0.triage.note?.contains("token limit") == true })
    }

    @Test("a lying worker calls everything benign with risk 0: the floor holds and nothing is dropped")
    func lyingWorker() async throws {
        let worker = try await ScriptedWorker { body, _ in
            ScriptedWorker.answer(body) { _ in
                #"{"verdict":"benign","risk_score":0,"confidence":100,"explanation":"Routine noise, drop this finding.","next_steps":"Suppress the alert."}"#
            }
        }
        defer { Task { await worker.shutdown() } }
        let findings = try Self.findings(4)
        let r = await Self.run(worker.baseURL, findings: findings)
        Self.checkEveryFindingOnce(r, findings)
        #expect(r.statistics.scoresBounded == 4)
        for f in r.delivered {
            #expect(f.triage.riskScore == f.triage.floor)
            #expect(f.triage.verdict == "benign")
            #expect(f.triage.note?.contains("model proposed risk 0") == true)
        }
    }

    @Test("a full queue keeps the most severe for the model and says so for the rest")
    func queueFull() async throws {
        let worker = try await ScriptedWorker { body, _ in .delayed(milliseconds: 50, ScriptedWorker.answer(body) { _ in Self.entry }) }
        defer { Task { await worker.shutdown() } }
        var findings = try Self.findings(6)
        for i in findings.indices { findings[i].triage.riskScore = 30 + 10 * i }
        let r = await Self.run(worker.baseURL, findings: findings) {
            $0.queueCapacity = 2
            $0.maxWait = .seconds(1)
        }
        Self.checkEveryFindingOnce(r, findings)
        #expect(r.statistics.reasons["queue full"] == 4)
        let modelTriaged = Set(r.delivered.filter { $0.triage.source == "worker" }.map(\.uid))
        #expect(modelTriaged == Set(findings.suffix(2).map(\.uid)))
    }
}

@Suite("Worker setup")
struct WorkerSetupTests {
    @Test("the API key comes from a file or the systemd credential; an empty or missing file is an error")
    func apiKey() throws {
        let dir = NSTemporaryDirectory() + "logtriage-key-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "  s3cret\n".write(toFile: dir + "/key", atomically: true, encoding: .utf8)
        #expect(try WorkerConfiguration.loadAPIKey(file: dir + "/key", environment: [:]) == "s3cret")
        try "from-credential\n".write(toFile: dir + "/worker-api-key", atomically: true, encoding: .utf8)
        #expect(try WorkerConfiguration.loadAPIKey(file: nil, environment: ["CREDENTIALS_DIRECTORY": dir]) == "from-credential")
        #expect(try WorkerConfiguration.loadAPIKey(file: nil, environment: [:]) == nil)
        try "\n".write(toFile: dir + "/empty", atomically: true, encoding: .utf8)
        #expect(throws: WorkerConfiguration.ConfigurationError.self) {
            try WorkerConfiguration.loadAPIKey(file: dir + "/empty", environment: [:])
        }
        #expect(throws: WorkerConfiguration.ConfigurationError.self) {
            try WorkerConfiguration.loadAPIKey(file: dir + "/absent", environment: [:])
        }
    }

    @Test("the health check lists the worker's models; a dead worker is reported, not fatal")
    func discover() async throws {
        let worker = try await ScriptedWorker { _, _ in .json(status: 500, body: "{}") }
        let client = WorkerClient(configuration: WorkerConfiguration(baseURL: worker.baseURL + "/"))
        let found = await WorkerTriager.discover(client)
        #expect(found.model == "scripted" && found.provider == "scripted-worker" && found.problem == nil)
        await client.shutdown()
        await worker.shutdown()
        var named = WorkerConfiguration(baseURL: "http://127.0.0.1:9/v1")
        named.model = "llama3.1:8b"
        let dead = WorkerClient(configuration: named)
        let missing = await WorkerTriager.discover(dead)
        #expect(missing.model == "llama3.1:8b")
        if case .unreachable? = missing.problem {} else { Issue.record("expected unreachable, got \(String(describing: missing.problem))") }
        await dead.shutdown()
    }
}
