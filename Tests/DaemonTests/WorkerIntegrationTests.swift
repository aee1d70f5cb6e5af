import Foundation
import TestSupport
import Testing

/// `scan --triage worker` against a real llama-server serving SmolLM2-135M (Deploy/llm-worker.sh,
/// started by scripts/test.sh, which exports LOGTRIAGE_TEST_WORKER_URL). The checks are on
/// structure, bounds and bookkeeping, never on what the small model writes.
@Suite("Real inference worker", .serialized)
struct WorkerIntegrationTests {
    static let url = ProcessInfo.processInfo.environment["LOGTRIAGE_TEST_WORKER_URL"]
    /// Set to 1 to run the suite without a worker (for quick local runs); CI never sets it.
    static let skip = ProcessInfo.processInfo.environment["LOGTRIAGE_SKIP_WORKER"] == "1"

    static func lines(_ out: Data) throws -> [[String: Any]] {
        try out.split(separator: UInt8(ascii: "\n")).map {
            try #require(try JSONSerialization.jsonObject(with: Data($0)) as? [String: Any])
        }
    }

    static func triage(_ f: [String: Any]) -> [String: Any] { ((f["unmapped"] as? [String: Any])?["triage"] as? [String: Any]) ?? [:] }
    static func uid(_ f: [String: Any]) -> String { ((f["finding_info"] as? [String: Any])?["uid"] as? String) ?? "" }

    @Test("every finding is written at once and updated once, by the model or with the reason it was not")
    func updates() throws {
        guard let url = Self.url else {
            if !Self.skip {
                Issue.record("LOGTRIAGE_TEST_WORKER_URL is not set: run the tests with scripts/test.sh, which starts the worker")
            }
            return
        }
        // Six findings of different rules from the bundled example: enough for two batches and a
        // partial one, few enough for a 135M model on one CPU thread.
        let example = try String(contentsOfFile: Fixtures.repositoryRoot + "/Deploy/examples/auth.log", encoding: .utf8)
        let picked = example.split(separator: "\n").filter {
            $0.contains("Invalid user") || $0.contains("NOT in sudoers") || $0.contains("useradd") || $0.contains("crontab")
                || $0.contains("Stopped") || $0.contains("COMMAND=/bin/bash")
        }
        let log = try Fixtures.temporaryFile(Array((picked.joined(separator: "\n") + "\n").utf8))
        defer { try? FileManager.default.removeItem(atPath: log) }
        let (status, out, err) = try Fixtures.run(
            Fixtures.binary,
            [
                "scan", "--year", "2024", "--triage", "worker", "--worker-url", url, "--worker-batch-size", "2", "--worker-timeout", "240",
                "--worker-deadline", "900", log,
            ])
        #expect(status == 0, "\(err)")
        let findings = try Self.lines(out)
        let created = findings.filter { $0["activity_id"] as? Int == 1 }
        let updated = findings.filter { $0["activity_id"] as? Int == 2 }
        #expect(created.count >= 4)
        #expect(Set(created.map(Self.uid)).count == created.count)
        #expect(updated.map(Self.uid).sorted() == created.map(Self.uid).sorted(), "each finding gets exactly one update")
        let first = Dictionary(uniqueKeysWithValues: created.map { (Self.uid($0), $0) })
        var byModel = 0
        for u in updated {
            let t = Self.triage(u)
            let risk = try #require(u["risk_score"] as? Int)
            let floor = try #require(t["risk_floor"] as? Int)
            let builtin = try #require(first[Self.uid(u)]?["risk_score"] as? Int)
            #expect(risk >= floor && risk <= 100)
            #expect(abs(risk - builtin) <= 20)
            #expect(u["type_uid"] as? Int == 200402)
            switch t["source"] as? String {
            case "worker":
                byModel += 1
                let model = try #require(u["ai_model"] as? [String: Any])
                #expect((model["name"] as? String)?.isEmpty == false)
                #expect(model["provider"] as? String == "llamacpp")
                let confidence = try #require(u["confidence_score"] as? Int)
                #expect((0...100).contains(confidence))
                #expect(["malicious", "suspicious", "benign"].contains(t["verdict"] as? String ?? ""))
                let desc = try #require((u["finding_info"] as? [String: Any])?["desc"] as? String)
                #expect(!desc.isEmpty && desc.unicodeScalars.allSatisfy { $0.value >= 0x20 })
            case "builtin":
                #expect((t["note"] as? String)?.hasPrefix("built-in triage kept: ") == true)
                #expect(u["ai_model"] == nil)
            default:
                Issue.record("unexpected triage source in \(t)")
            }
        }
        #expect(byModel > 0, "the worker triaged nothing: \(err)")
        #expect(err.contains("triage: \(created.count) findings to the worker, \(byModel) triaged by the model"))
    }

    @Test("--worker-hold writes each finding once, with the triage it ended up with")
    func hold() throws {
        guard let url = Self.url else {
            if !Self.skip {
                Issue.record("LOGTRIAGE_TEST_WORKER_URL is not set: run the tests with scripts/test.sh, which starts the worker")
            }
            return
        }
        let log = try Fixtures.temporaryFile(
            Array(
                """
                Mar 10 09:00:01 web1 sshd[100]: Failed password for root from 203.0.113.9 port 22 ssh2
                Mar 10 09:00:02 web1 sudo:    guest : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/guest ; USER=root ; COMMAND=/bin/bash

                """.utf8))
        defer { try? FileManager.default.removeItem(atPath: log) }
        let (status, out, err) = try Fixtures.run(
            Fixtures.binary,
            ["scan", "--year", "2024", "--triage", "worker", "--worker-hold", "--worker-url", url, "--worker-timeout", "240", log])
        #expect(status == 0, "\(err)")
        let findings = try Self.lines(out)
        #expect(findings.count >= 2)
        #expect(Set(findings.map(Self.uid)).count == findings.count)
        for f in findings {
            #expect(f["activity_id"] as? Int == 1)
            let source = Self.triage(f)["source"] as? String
            #expect(
                source == "worker"
                    || (source == "builtin" && (Self.triage(f)["note"] as? String)?.hasPrefix("built-in triage kept") == true))
        }
    }

    @Test("the live daemon writes each finding at once and the model's update after it")
    func liveDaemon() throws {
        guard let url = Self.url else {
            if !Self.skip {
                Issue.record("LOGTRIAGE_TEST_WORKER_URL is not set: run the tests with scripts/test.sh, which starts the worker")
            }
            return
        }
        let dir = NSTemporaryDirectory() + "logtriage-live-worker-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/auth.log"
        let out = dir + "/findings.jsonl"
        try """
        sources:
          files:
            - path: \(log)
        output:
          - file: \(out)
        state_directory: \(dir)/state
        triage:
          mode: worker
          worker: {url: "\(url)", batch_size: 2, timeout: 120s, deadline: 300s}
        """.write(toFile: dir + "/logtriage.yaml", atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Fixtures.binary)
        p.arguments = ["run", "--config", dir + "/logtriage.yaml"]
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "MMM d HH:mm:ss"
        let stamp = f.string(from: Date())
        try """
        \(stamp) web1 sshd[501]: Failed password for root from 203.0.113.90 port 22 ssh2
        \(stamp) web1 sudo:    mallory : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/mallory ; USER=root ; COMMAND=/bin/sh

        """.write(toFile: log, atomically: false, encoding: .utf8)
        // Wait for every update (the 135M model on one thread takes tens of seconds; the daemon's
        // 300 s deadline turns a hung request into built-in updates well before this wait ends).
        var lines: [[String: Any]] = []
        let deadline = Date().addingTimeInterval(600)
        while Date() < deadline {
            let data = FileManager.default.contents(atPath: out) ?? Data()
            lines = data.split(separator: UInt8(ascii: "\n")).compactMap {
                try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any]
            }
            let created = lines.filter { $0["activity_id"] as? Int == 1 }.count
            if created >= 2, lines.filter({ $0["activity_id"] as? Int == 2 }).count >= created { break }
            usleep(200_000)
        }
        p.terminate()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let created = lines.filter { $0["activity_id"] as? Int == 1 }
        let updates = lines.filter { $0["activity_id"] as? Int == 2 }
        #expect(created.count >= 2)
        #expect(updates.map(Self.uid).sorted() == created.map(Self.uid).sorted(), "each finding gets exactly one update")
        for u in updates {
            let t = Self.triage(u)
            #expect(t["source"] as? String == "worker" || (t["note"] as? String)?.hasPrefix("built-in triage kept") == true)
            if t["source"] as? String == "worker" { #expect((u["ai_model"] as? [String: Any])?["name"] != nil) }
            #expect((u["risk_score"] as? Int ?? -1) >= (t["risk_floor"] as? Int ?? 101))
        }
    }
}
