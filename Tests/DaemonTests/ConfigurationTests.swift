import Daemon
import Foundation
import Sigma
import TestSupport
import Testing

@Suite("Daemon configuration")
struct ConfigurationTests {
    @Test("the documented example in Deploy/ is valid and means what its comments say")
    func example() throws {
        let (config, problems) = DaemonConfiguration.load(path: Fixtures.repositoryRoot + "/Deploy/logtriage.yaml")
        #expect(problems.isEmpty, "\(problems)")
        let c = try #require(config)
        #expect(c.journal == DaemonConfiguration.Journal())
        #expect(c.syslog.map(\.transport) == [.udp, .tcp])
        #expect(c.syslog[1].maxConnections == 256 && c.syslog[1].maxMessageBytes == 65536)
        #expect(c.files == [.init(path: "/var/log/auth.log", format: "auto")])
        #expect(c.outputs == [.stdout])
        #expect(c.aggregateWindowSeconds == 300)
        #expect(c.stateDirectory == "/var/lib/logtriage")
        #expect(c.triage == .builtin)
    }

    @Test("the embedded defaults: system journal, syslog on 127.0.0.1:5514 over UDP and TCP, stdout")
    func defaults() {
        let d = DaemonConfiguration.defaults
        #expect(d.journal?.directory == nil && d.journal?.start == .tail)
        #expect(
            d.syslog.map { "\($0.transport.rawValue)://\($0.address):\($0.port ?? 0)" } == ["udp://127.0.0.1:5514", "tcp://127.0.0.1:5514"])
        #expect(d.outputs == [.stdout])
        #expect(d.rules.isEmpty)
        #expect(d.triage == .builtin)
    }

    @Test("every key the issue names parses")
    func fullFile() throws {
        let yaml = """
            sources:
              journal: {directory: /var/log/journal, since: 2h}
              syslog:
                - listen: udp://127.0.0.1:5514
                - listen: tcp://[::1]:6514
                - listen: unix:///run/logtriage/syslog.sock
                - listen: unixgram:///run/logtriage/dev-log
              files:
                - path: /var/log/auth.log
                - {path: /var/log/app.jsonl, format: jsonl}
            rules: [/etc/logtriage/rules, ./extra-rules]
            output:
              - stdout
              - file: /var/log/logtriage/findings.jsonl
                fsync: always
              - socket: unix:///run/logtriage/findings.sock
              - syslog: tcp://siem.example.internal:6514
            format: ecs
            state_directory: /var/lib/logtriage
            triage:
              mode: worker
              worker: {url: "http://127.0.0.1:8089/v1", batch_size: 8, deadline: 90s, hold: true}
            """
        let (config, problems) = DaemonConfiguration.parse(yaml, file: "t.yaml")
        #expect(problems.isEmpty, "\(problems)")
        let c = try #require(config)
        #expect(c.journal?.directory == "/var/log/journal" && c.journal?.start == .since(7_200_000_000))
        #expect(c.syslog.count == 4)
        #expect(c.syslog[1].address == "::1" && c.syslog[1].port == 6514)
        #expect(c.syslog[2].transport == .unix && c.syslog[2].address == "/run/logtriage/syslog.sock")
        #expect(c.files[1].format == "jsonl")
        #expect(c.rules == ["/etc/logtriage/rules", "./extra-rules"])
        #expect(
            c.outputs == [
                .stdout, .file(path: "/var/log/logtriage/findings.jsonl", fsync: .always), .socket(path: "/run/logtriage/findings.sock"),
                .syslog(host: "siem.example.internal", port: 6514),
            ])
        #expect(c.format == .ecs)
        let w = try #require(c.worker)
        #expect(w.batchSize == 8 && w.deadlineSeconds == 90 && w.hold)
        let worker = try w.configuration()
        #expect(worker.batchSize == 8 && worker.deadline == .seconds(90) && worker.baseURL == "http://127.0.0.1:8089/v1")
    }

    @Test("journal keys: namespace, since all, match none")
    func journalKeys() throws {
        let (config, problems) = DaemonConfiguration.parse(
            "sources:\n  journal: {namespace: audit, since: all, match: none}\n", file: "j.yaml")
        #expect(problems.isEmpty, "\(problems)")
        let j = try #require(config?.journal)
        #expect(j.namespace == "audit" && j.start == .head && !j.matchRules && j.directory == nil)
        let tail = try #require(DaemonConfiguration.parse("sources:\n  journal: {since: tail}\n", file: "j.yaml").0?.journal)
        #expect(tail.start == .tail && tail.matchRules)
    }

    @Test(
        "problems name their line and say what is wrong",
        arguments: [
            ("sources:\n  files:\n    - path: /var/log/auth.log\n  jornal: true\n", 4, "unknown key 'jornal'"),
            ("sources:\n  syslog:\n    - listen: udp://127.0.0.1\n", 3, "needs host:port"),
            ("sources:\n  syslog:\n    - listen: http://127.0.0.1:80\n", 3, "unknown scheme 'http'"),
            ("sources:\n  syslog:\n    - listen: udp://127.0.0.1:99999\n", 3, "needs host:port"),
            ("sources:\n  syslog:\n    - listen: tcp://127.0.0.1:5514\n      max_connections: 0\n", 4, "between 1 and 65536"),
            ("sources:\n  files:\n    - path: var/log/auth.log\n", 3, "absolute path"),
            ("sources:\n  files:\n    - format: syslog\n", 3, "needs path"),
            ("sources:\n  files: [{path: /a}]\noutput:\n  - stdout\n  - file: /x\n    fsync: sometimes\n", 6, "fsync must be"),
            ("sources:\n  files: [{path: /a}]\noutput:\n  - printer\n", 4, "unknown output 'printer'"),
            ("sources:\n  files: [{path: /a}]\noutput:\n  - syslog: udp://siem:514\n", 4, "tcp://host:port"),
            ("sources:\n  files: [{path: /a}]\ntriage:\n  mode: worker\n", 4, "needs triage.worker.url"),
            ("sources:\n  files: [{path: /a}]\ntriage:\n  worker: {url: ftp://x}\n", 4, "must start with http"),
            ("sources: {}\n", 1, "no sources"),
            ("sources:\n  files: [{path: /a}]\naggregate_window: soon\n", 3, "duration"),
            ("sources:\n  files: [{path: /a}\n", 3, "YAML error"),
            ("sources:\n  files: [{path: /a}]\nformat: cef\n", 3, "format must be ocsf or ecs"),
            ("sources:\n  journal: {namespace: a, directory: /var/log/journal}\n", 2, "one of directory, files or namespace"),
            ("sources:\n  journal: {match: some}\n", 2, "match must be rules or none"),
        ])
    func problems(yaml: String, line: Int, message: String) {
        let (config, problems) = DaemonConfiguration.parse(yaml, file: "bad.yaml")
        #expect(config == nil)
        #expect(problems.contains { $0.line == line && $0.message.contains(message) }, "\(problems)")
        #expect(problems.allSatisfy { $0.description.hasPrefix("bad.yaml:") })
    }

    @Test("config check prints file:line problems and exits 1; a valid file exits 0")
    func checkCommand() throws {
        let bad = try Fixtures.temporaryFile(Array("sources:\n  syslog:\n    - listen: udp://127.0.0.1\n".utf8), suffix: ".yaml")
        defer { try? FileManager.default.removeItem(atPath: bad) }
        let (status, out, _) = try Fixtures.run(Fixtures.binary, ["config", "check", bad])
        #expect(status == 1)
        #expect(String(decoding: out, as: UTF8.self).hasPrefix("\(bad):3: "))
        let (ok, okOut, _) = try Fixtures.run(Fixtures.binary, ["config", "check", Fixtures.repositoryRoot + "/Deploy/logtriage.yaml"])
        #expect(ok == 0)
        #expect(String(decoding: okOut, as: UTF8.self).contains(": ok: system journal, syslog udp://127.0.0.1:5514"))
        let (d, defaults, _) = try Fixtures.run(Fixtures.binary, ["config", "defaults"])
        #expect(d == 0)
        #expect(DaemonConfiguration.parse(String(decoding: defaults, as: UTF8.self), file: "-").0 == DaemonConfiguration.defaults)
    }
}

@Suite("systemd unit")
struct UnitFileTests {
    /// The unit with ExecStart pointing at the built binary, as an installed copy would.
    static func unit() throws -> String {
        let text = try String(contentsOfFile: Fixtures.repositoryRoot + "/Deploy/logtriage.service", encoding: .utf8)
        let dir = NSTemporaryDirectory() + "logtriage-unit-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/logtriage.service"
        try text.replacingOccurrences(of: "/usr/local/bin/logtriage", with: Fixtures.binary).write(
            toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("systemd-analyze verify prints nothing")
    func verify() throws {
        let path = try Self.unit()
        let (status, out, err) = try Fixtures.run("/usr/bin/systemd-analyze", ["verify", path])
        #expect(status == 0)
        #expect(out.isEmpty && err.isEmpty, "\(err)")
    }

    @Test("systemd-analyze security rates the sandbox at most 2.0")
    func security() throws {
        let path = try Self.unit()
        let (status, out, err) = try Fixtures.run("/usr/bin/systemd-analyze", ["security", "--offline=true", path])
        #expect(status == 0, "\(err)")
        let text = String(decoding: out, as: UTF8.self) + err
        let line = try #require(text.split(separator: "\n").first { $0.contains("Overall exposure level") })
        let score = try #require(line.split(separator: " ").compactMap { Double($0) }.first)
        #expect(score <= 2.0, "\(line)")
    }
}

@Suite("Checkpoint store")
struct CheckpointStoreTests {
    static func directory() -> String { NSTemporaryDirectory() + "logtriage-state-\(UUID().uuidString)" }

    @Test("a first start has no checkpoints; what is saved loads back; no temporary file lingers")
    func roundTrip() throws {
        let store = CheckpointStore(directory: Self.directory())
        defer { try? FileManager.default.removeItem(atPath: store.directory) }
        let (empty, warning) = try store.load()
        #expect(empty == Checkpoints() && warning == nil)
        var c = Checkpoints()
        c.files["/var/log/auth.log"] = .init(device: 2049, inode: 77, offset: 4096, line: 40, fingerprint: 123, fingerprintLength: 256)
        c.journalCursor = "s=abc;i=1f"
        c.correlationState = Data([1, 2, 3])
        try store.save(c)
        c.files["/var/log/auth.log"]?.offset = 8192
        try store.save(c)
        #expect(try store.load().0 == c)
        #expect(!FileManager.default.fileExists(atPath: store.path + ".tmp"))
        let mode = try FileManager.default.attributesOfItem(atPath: store.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)

        // Streamed state is stored raw after the JSON line (newlines in it included) and read back,
        // also when it is larger than the writer's buffer.
        let snapshot: [UInt8] = [10, 0, 255, 10, 42] + (0..<200_000).map { UInt8(truncatingIfNeeded: $0) }
        try store.save(c) { w in
            for chunk in stride(from: 0, to: snapshot.count, by: 5000) {
                w.bytes(Array(snapshot[chunk..<min(snapshot.count, chunk + 5000)]))
            }
        }
        var expected = SnapshotWriter()
        for chunk in stride(from: 0, to: snapshot.count, by: 5000) {
            expected.bytes(Array(snapshot[chunk..<min(snapshot.count, chunk + 5000)]))
        }
        #expect(try store.load().0.correlationState == Data(expected.out))
        let raw = try #require(FileManager.default.contents(atPath: store.path))
        #expect(!String(decoding: raw.prefix(while: { $0 != 10 }), as: UTF8.self).contains("correlationState"))

        // The older form, the state as base64 inside the JSON, still loads.
        try Data(#"{"files":{},"version":1,"correlationState":"AQID"}"#.utf8).write(to: URL(fileURLWithPath: store.path))
        #expect(try store.load().0.correlationState == Data([1, 2, 3]))
    }

    @Test("a corrupt file is moved aside and reported; reading starts afresh")
    func corrupt() throws {
        let store = CheckpointStore(directory: Self.directory())
        defer { try? FileManager.default.removeItem(atPath: store.directory) }
        try FileManager.default.createDirectory(atPath: store.directory, withIntermediateDirectories: true)
        try Data("{\"version\":1,\"files\":{\"x\":".utf8).write(to: URL(fileURLWithPath: store.path))
        let (c, warning) = try store.load()
        #expect(c == Checkpoints())
        #expect(warning?.contains("moved to") == true)
        #expect(FileManager.default.fileExists(atPath: store.path + ".corrupt"))
        #expect(!FileManager.default.fileExists(atPath: store.path))
    }
}
