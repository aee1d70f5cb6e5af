import Daemon
import EventModel
import Findings
import Foundation
import Ingest
import Sigma
import TestSupport
import Testing

struct RulePackTests {
    @Test func bundledRulesLoadAndPassTheirTests() throws {
        let (set, report) = RuleSet.load(paths: [Fixtures.rulesDirectory + "/linux"], pipeline: try Fixtures.bundledPipeline())
        #expect(report.errors.isEmpty, "\(report.errors)")
        #expect(set.rules.count >= 25)
        let outcome = RuleTestRunner(rules: set).run(files: RuleTestRunner.testFiles(in: Fixtures.rulesDirectory + "/tests"))
        #expect(outcome.failures.isEmpty, "\(outcome.failures)")
        #expect(outcome.untested.isEmpty, "rules without a test: \(outcome.untested)")
        #expect(outcome.passed >= set.rules.count)
        for rule in set.rules {
            let author = rule.author ?? ""
            let techniques = rule.attackTechniques.count
            #expect(!author.isEmpty, "\(rule.title) needs an author")
            #expect(techniques > 0, "\(rule.title) needs an ATT&CK technique")
        }
    }

    @Test func heldFailuresAreReleasedWhenTheirSessionEnds() throws {
        // A failure naming no address waits for its session; a new connection on the same pid
        // (after a long idle) ends the old session, and the held failure is reported, not dropped.
        let (set, _) = RuleSet.load(paths: [Fixtures.rulesDirectory + "/linux"], pipeline: try Fixtures.bundledPipeline())
        var context = RuleSet.Context()
        var held = Fixtures.syslog("Mar  1 10:00:00 h sshd[7]: Disconnecting: Too many authentication failures for root [preauth]")
        #expect(set.evaluate(&held, context: &context).isEmpty)
        var later = Fixtures.syslog("Mar  1 10:30:00 h sshd[7]: Server listening on 0.0.0.0 port 22.")
        let reports = set.evaluate(&later, context: &context)
        #expect(reports.count == 1)
        #expect(reports.first?.event.string("MESSAGE")?.hasPrefix("Disconnecting") == true)
        #expect(set.drainPending(context: &context).isEmpty)
    }

    @Test func aFullSessionMemoryForgetsItsOlderHalfAndNothingElse() throws {
        // The memory holds 16,384 sessions. 20,000 connections, each naming its address, make it
        // forget its older half once: the first session's held failure is reported then, the
        // forgotten sessions lose their address, and the kept ones keep theirs.
        let (set, _) = RuleSet.load(paths: [Fixtures.rulesDirectory + "/linux"], pipeline: try Fixtures.bundledPipeline())
        var context = RuleSet.Context()
        func address(_ pid: Int) -> String { "10.0.\(pid >> 8).\(pid & 255)" }
        func failure(_ pid: Int) -> Event {
            Fixtures.syslog("Mar  1 10:00:02 h sshd[\(pid)]: Disconnecting: Too many authentication failures for root [preauth]")
        }
        var held = failure(1)
        #expect(set.evaluate(&held, context: &context).isEmpty)
        var released: [Event] = []
        for pid in 2...20_001 {
            var e = Fixtures.syslog("Mar  1 10:00:01 h sshd[\(pid)]: Connection from \(address(pid)) port 50000 on 10.1.0.1 port 22")
            released += set.evaluate(&e, context: &context).map(\.event).filter { $0.string("_PID") == "1" }
        }
        #expect(released.count == 1)
        for pid in [10_000, 20_001] {
            var e = failure(pid)
            let reports = set.evaluate(&e, context: &context)
            #expect(reports.count == 1 && reports.first?.event.string("source.address") == address(pid), "pid \(pid)")
        }
        // A forgotten session starts over: its failure waits for an address.
        var forgotten = failure(5_000)
        #expect(set.evaluate(&forgotten, context: &context).isEmpty)
    }

    @Test func sigmaHQLinuxRulesLoad() throws {
        let dir = Fixtures.shared + "/sigma/linux-rules"
        try #require(FileManager.default.fileExists(atPath: dir), "SigmaHQ rules not found at \(dir)")
        let (_, report) = RuleSet.load(paths: [dir], pipeline: try Fixtures.bundledPipeline())
        let total = report.loaded + report.rejected
        let share = Double(report.loaded) / Double(total)
        print("SigmaHQ Linux rules: \(report.loaded) loaded, \(report.rejected) rejected (\(String(format: "%.1f", share * 100))%)")
        #expect(share >= 0.95)
        for e in report.errors {
            #expect(e.location.line > 0 && e.location.file.hasSuffix(".yml"), "\(e)")
            // Only the obsolete constructs SigmaHQ keeps in unsupported/ may fail.
            #expect(e.location.file.contains("/unsupported/") || e.location.file.contains("/deprecated/"), "\(e)")
        }
    }
}

/// Per-line evaluation on fail2ban's annotated sshd and PAM logs.
struct Fail2banEvaluation {
    struct Annotated {
        var line: String
        var match: Bool
        var host: String?
        var user: String?
        var file: String
    }

    static func annotated(_ name: String) throws -> [Annotated] {
        let path = Fixtures.shared + "/corpora/fail2ban/logs/" + name
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var out: [Annotated] = []
        var pending: [String: Any]?
        // Whether the current section of the file runs fail2ban in aggressive mode.
        var aggressiveSection = true
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(raw)
            if line.hasPrefix("# filterOptions:") {
                aggressiveSection = line.contains("aggressive")
                continue
            }
            if line.hasPrefix("# failJSON:") {
                let json = line.dropFirst("# failJSON:".count)
                pending = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
                continue
            }
            if line.hasPrefix("#") || line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            // The evaluation models fail2ban's aggressive mode (pre-auth noise counts), so
            // expectations that hold only outside it are left out: those constrained to it, and
            // those that say they hold in normal mode within a section fail2ban runs only in
            // normal mode.
            let normalOnly = !aggressiveSection && ((pending?["desc"] as? String)?.contains("normal mode") ?? false)
            if let p = pending, (p["constraint"] as? String) != "opts.get('mode') != 'aggressive'", !normalOnly {
                out.append(
                    Annotated(
                        line: line, match: p["match"] as? Bool ?? false, host: p["host"] as? String,
                        user: p["user"] as? String, file: name))
            }
            pending = nil
        }
        return out
    }

    /// Authentication-failure rules: brute force (T1110) and pre-auth probing (T1595).
    static func isFailureRule(_ rule: SigmaRule) -> Bool {
        rule.attackTechniques.contains { $0.hasPrefix("T1110") || $0.hasPrefix("T1595") }
    }

    @Test func recallAndPrecisionOnAnnotatedLines() throws {
        let (set, _) = RuleSet.load(paths: [Fixtures.rulesDirectory + "/linux"], pipeline: try Fixtures.bundledPipeline())
        var lines: [Annotated] = []
        for f in ["sshd", "sshd-journal", "pam-generic"] { lines += try Self.annotated(f) }
        try #require(lines.count > 250)
        var truePositives = 0, exactHost = 0, positives = 0, userAnnotated = 0, exactUser = 0
        var falseAlarms: [String] = []
        var missed: [String] = []
        var context = RuleSet.Context()
        // What each line reported: a failure held for a later line is credited to its own line.
        var reported: [Int: (rules: [Int], event: Event)] = [:]
        func record(_ rules: [Int], _ event: Event) {
            // A failure that never learned its source is attributed to no one, as in fail2ban.
            guard event.fields.contains("source.address") else { return }
            let failures = rules.filter { Self.isFailureRule(set.rules[$0]) }
            if !failures.isEmpty { reported[event.position.line, default: ([], event)].rules += failures }
        }
        for (i, a) in lines.enumerated() {
            var event = Fixtures.syslog(a.line)
            event.position.line = i
            for (matched, matchedEvent) in set.evaluate(&event, context: &context) { record(matched, matchedEvent) }
        }
        for (held, heldEvent) in set.drainPending(context: &context) { record(held, heldEvent) }
        for (i, a) in lines.enumerated() {
            let matched = reported[i]?.rules ?? []
            let observed = reported[i].map { Observable.from($0.event) } ?? []
            if a.match {
                positives += 1
                if !matched.isEmpty {
                    truePositives += 1
                    // Lines annotated without a host (the log names none) count once detected.
                    if a.host == nil || observed.contains(where: { ($0.typeID == 2 || $0.typeID == 1) && $0.value == a.host }) {
                        exactHost += 1
                    } else {
                        missed.append("[host \(a.host ?? "-") got \(observed.map(\.value))] \(a.line)")
                    }
                } else {
                    missed.append("[undetected] \(a.line)")
                }
                if let user = a.user {
                    userAnnotated += 1
                    if observed.contains(where: { $0.typeID == 4 && $0.value == user }) { exactUser += 1 }
                }
            } else if !matched.isEmpty {
                falseAlarms.append("[\(matched.map { set.rules[$0].title })] \(a.line)")
            }
        }
        let recall = Double(exactHost) / Double(positives)
        print("fail2ban sshd+sshd-journal+pam-generic: \(lines.count) annotated lines, \(positives) failures")
        print(
            "  detected \(truePositives)/\(positives), with the exact annotated host \(exactHost) (recall \(String(format: "%.1f", recall * 100))%)"
        )
        print(
            "  exact user \(exactUser)/\(userAnnotated); failures raised on match:false lines: \(falseAlarms.count)/\(lines.count - positives)"
        )
        for m in missed { print("  missed \(m)") }
        for f in falseAlarms { print("  false alarm \(f)") }
        #expect(recall >= 0.95)
        #expect(falseAlarms.isEmpty)
    }
}

/// Drives the real binary.
struct ScanCommandTests {
    /// Findings own standard output. The YAML library prints a notice there when
    /// YAMS_DEFAULT_ENCODING is set and a parse takes its default encoding; every parse names
    /// its encoding, so the notice never comes.
    @Test func standardOutputHoldsFindingsAloneWhateverTheEnvironment() throws {
        let (status, out, err) = try Fixtures.run(
            Fixtures.binary, ["scan", Fixtures.repositoryRoot + "/Deploy/examples/auth.log"], environment: ["YAMS_DEFAULT_ENCODING": "UTF8"]
        )
        #expect(status == 0, "\(err)")
        let lines = out.split(separator: 10)
        #expect(lines.count >= 8)
        for l in lines {
            #expect((try? JSONSerialization.jsonObject(with: Data(l))) != nil, "not JSON: \(String(decoding: l, as: UTF8.self))")
        }
    }

    @Test func scanOfBundledExampleWritesOCSFFindings() throws {
        let (status, out, err) = try Fixtures.run(Fixtures.binary, ["scan", Fixtures.repositoryRoot + "/Deploy/examples/auth.log"])
        #expect(status == 0, "\(err)")
        let lines = out.split(separator: 10)
        #expect(lines.count >= 8)
        var titles: Set<String> = []
        for l in lines {
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(l)) as? [String: Any])
            #expect(obj["class_uid"] as? Int == 2004)
            #expect(obj["activity_id"] as? Int == 1)
            let info = try #require(obj["finding_info"] as? [String: Any])
            #expect((info["uid"] as? String)?.count == 36)
            #expect((info["analytic"] as? [String: Any])?["type_id"] as? Int == 1)
            #expect(((obj["unmapped"] as? [String: Any])?["sigma"] as? [String: Any])?["author"] as? String != nil)
            #expect((obj["evidences"] as? [Any])?.isEmpty == false)
            #expect((obj["metadata"] as? [String: Any]).flatMap { $0["product"] as? [String: Any] }?["name"] as? String == "logtriage")
            titles.insert(info["title"] as? String ?? "")
        }
        #expect(titles.contains("User added to a privileged group"))
        #expect(titles.contains("System logging service stopped"))
        #expect(err.contains("16 lines"))
        // The five root password failures (one line stands for three) fold into one finding.
        let brute = try lines.compactMap { try JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }
            .first {
                ($0["message"] as? String)?.contains("user.name=root") == true
                    && ($0["finding_info"] as? [String: Any])?["title"] as? String == "SSH password authentication failed"
            }
        #expect(brute?["count"] as? Int == 5)
    }

    @Test func replayGivesTheSameUIDs() throws {
        let path = Fixtures.repositoryRoot + "/Deploy/examples/auth.log"
        let a = try Fixtures.run(Fixtures.binary, ["scan", path]).1
        let b = try Fixtures.run(Fixtures.binary, ["scan", path]).1
        func uids(_ d: Data) throws -> [String] {
            try d.split(separator: 10).map { try JSONSerialization.jsonObject(with: Data($0)) as! [String: Any] }
                .map { ($0["finding_info"] as! [String: Any])["uid"] as! String }
        }
        #expect(try uids(a) == uids(b))
    }

    @Test func ecsFormatAndStdin() throws {
        let line = "Mar  1 09:00:00 host sudo:  eve : user NOT in sudoers ; TTY=pts/0 ; PWD=/root ; USER=root ; COMMAND=/bin/sh\n"
        let (status, out, _) = try Fixtures.run(Fixtures.binary, ["scan", "--format", "ecs", "-"], stdin: Data(line.utf8))
        #expect(status == 0)
        let obj = try #require(
            try JSONSerialization.jsonObject(with: out.split(separator: 10).first.map { Data($0) } ?? Data()) as? [String: Any])
        #expect((obj["event"] as? [String: Any])?["kind"] as? String == "alert")
        #expect((obj["rule"] as? [String: Any])?["name"] as? String == "User not in sudoers tried to use sudo")
        #expect((obj["user"] as? [String: Any])?["name"] as? String == "eve")
    }

    @Test func hostileInputIsCountedAndEscaped() throws {
        var data = Array(
            "Mar  1 09:00:00 host sudo:  e\u{1B}[31mve\0 : user NOT in sudoers ; TTY=x ; PWD=/ ; USER=root ; COMMAND=/bin/sh \u{FF}\n".utf8)
        data += [0xFF, 0xFE, 0xC3, 0x28, 10]
        data += Array(repeating: UInt8(ascii: "x"), count: 3 << 20) + [10]
        let path = try Fixtures.temporaryFile(data)
        let (status, out, err) = try Fixtures.run(Fixtures.binary, ["scan", path])
        #expect(status == 0)
        #expect(err.contains("1 truncated"))
        #expect(err.contains("unparsable"))
        #expect(!out.contains(0x1B) && !out.contains(0))
        #expect(String(data: out, encoding: .utf8) != nil)
        #expect(out.split(separator: 10).count == 1)
    }

    @Test func missingFileAndBadRulesFailClearly() throws {
        let (status, _, err) = try Fixtures.run(Fixtures.binary, ["scan", "/nonexistent/file.log"])
        #expect(status == 2)
        #expect(err.contains("/nonexistent/file.log"))
        let bad = try Fixtures.temporaryFile(
            Array("title: x\nid: x\nlogsource: {product: linux}\ndetection:\n  s: {F|bogus: 1}\n  condition: s\n".utf8), suffix: ".yml")
        let (lintStatus, lintOut, _) = try Fixtures.run(Fixtures.binary, ["rules", "lint", bad])
        #expect(lintStatus == 1)
        let text = String(decoding: lintOut, as: UTF8.self)
        #expect(text.contains("\(bad):5: unknown modifier 'bogus'"))
        #expect(text.contains("0 loaded, 1 rejected"))
    }
}
