import Daemon
import EventModel
import Findings
import TestSupport
import Testing

@testable import Triage

@Suite("Built-in triage")
struct BuiltinTriagerTests {
    static let host = "Mar 10 09:00:0"

    @Test("every level's base score is its floor and the score never falls below it")
    func floors() throws {
        for level in [Severity.informational, .low, .medium, .high, .critical] {
            #expect(BuiltinTriager.base(level) >= 10 && BuiltinTriager.base(level) <= 85)
        }
        let findings = try Fixtures.findings([
            "Mar 10 09:00:01 web1 sshd[100]: Failed password for invalid user oracle from 198.51.100.7 port 4242 ssh2",
            "Mar 10 09:00:02 web1 useradd[200]: new user: name=backdoor, UID=1005, GID=1005, home=/home/backdoor, shell=/bin/bash",
        ])
        #expect(!findings.isEmpty)
        for f in findings {
            #expect(f.triage.source == "builtin")
            #expect(f.triage.floor == BuiltinTriager.base(f.severity))
            #expect(f.triage.riskScore >= f.triage.floor && f.triage.riskScore <= 100)
            #expect(f.triage.explanation?.contains(f.rule.title) == true)
            #expect(f.triage.remediation?.isEmpty == false)
        }
    }

    @Test("the formula: repeats, privileged target, novelty of the source")
    func formula() throws {
        // Five failures for root from one source fold into one finding of count 5.
        let lines = (1...5).map { "Mar 10 09:00:0\($0) web1 sshd[10\($0)]: Failed password for root from 203.0.113.9 port 22 ssh2" }
        let findings = try Fixtures.findings(lines, triage: .none)
        let failure = try #require(findings.first { $0.count == 5 && $0.observables.contains { $0.typeID == 4 } })
        var triager = BuiltinTriager()
        var f = failure
        let evidence = triager.triage(&f)
        #expect(evidence == .init(repeats: 6, privileged: true, successAfterFailure: false, novelSource: true))
        #expect(f.triage.riskScore == BuiltinTriager.base(f.severity) + 6 + 10 + 5)
        #expect(f.triage.explanation?.contains("5 events from 203.0.113.9") == true)
        #expect(f.triage.explanation?.contains("First finding from this source") == true)
        // The same source again is no longer novel.
        var again = failure
        let second = triager.triage(&again)
        #expect(!second.novelSource)
        #expect(again.triage.riskScore == f.triage.riskScore - 5)
    }

    @Test("a logon from a source that guessed passwords earlier in the run scores higher and says so")
    func successAfterFailure() throws {
        let guesses = (1...6).map { "Mar 10 09:00:0\($0) web1 sshd[10\($0)]: Failed password for alice from 203.0.113.20 port 22 ssh2" }
        let findings = try Fixtures.findings(
            guesses + [
                "Mar 10 09:00:08 web1 sshd[108]: Accepted password for alice from 203.0.113.20 port 22 ssh2",
                "Mar 10 09:00:09 web1 sshd[109]: Accepted publickey for root from 198.51.100.30 port 22 ssh2",
            ], triage: .none)
        var triager = BuiltinTriager()
        var results: [(Finding, BuiltinTriager.Evidence)] = []
        for var f in findings {
            let e = triager.triage(&f)
            results.append((f, e))
        }
        let accepted = results.filter { $0.0.rule.techniques.contains { $0.hasPrefix("T1078") } }
        let afterGuessing = try #require(accepted.first { $0.0.observables.contains { $0.value == "203.0.113.20" } })
        let clean = try #require(accepted.first { $0.0.observables.contains { $0.value == "198.51.100.30" } })
        #expect(afterGuessing.1.successAfterFailure)
        #expect(!clean.1.successAfterFailure)
        #expect(afterGuessing.0.triage.explanation?.contains("guessed credentials earlier") == true)
        #expect(afterGuessing.0.triage.remediation?.contains("compromised") == true)
    }

    @Test(
        "a message naming sudoers, or a group and sudo, wheel or admin, is privileged; words split across messages are not",
        arguments: [
            (["alice : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/sh"], true),
            (["add 'mallory' to group 'sudo'"], true),
            (["add 'mallory' to group 'WHEEL'"], true),
            (["new group: name=admin, GID=1001"], true),
            (["add 'bob' to group 'users'"], false),
            (["add 'bob' to group 'users'", "session opened for user wheelwright"], false),
            (["session opened for user alice"], false),
        ])
    func privilegedText(messages: [String], privileged: Bool) throws {
        let findings = try Fixtures.findings(
            ["Mar 10 09:00:01 web1 sshd[100]: Failed password for alice from 203.0.113.9 port 22 ssh2"], triage: .none)
        var f = try #require(findings.first)
        f.evidences = messages.map { m in
            var e = Event(position: SourcePosition(source: "t", line: 1, offset: 0))
            e.fields.add("MESSAGE", m)
            return e
        }
        var triager = BuiltinTriager()
        #expect(triager.triage(&f).privileged == privileged)
    }

    @Test("untriaged findings carry their floor")
    func untriaged() throws {
        let findings = try Fixtures.findings(
            ["Mar 10 09:00:01 web1 sshd[100]: Failed password for root from 203.0.113.9 port 22 ssh2"], triage: .none)
        for f in findings {
            #expect(f.triage.source == "none")
            #expect(f.triage.riskScore == BuiltinTriager.base(f.severity))
        }
    }
}
