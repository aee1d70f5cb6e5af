import Findings
import Foundation
import Ingest
import Sigma
import Triage
import Yams

/// What `logtriage run` reads, detects with, and writes to: one YAML file
/// (Deploy/logtriage.yaml documents every key), or the embedded defaults.
package struct DaemonConfiguration: Sendable, Equatable {
    package struct Journal: Sendable, Equatable {
        /// A journal directory; nil reads the system journal.
        package var directory: String?
        /// Journal files to read instead of a directory.
        package var files: [String] = []
        /// A journal namespace (`systemd-journald@NAME`) instead of the default system journal.
        package var namespace: String?
        /// Where a first start (no checkpoint yet) begins: the tail (`since: tail`), every entry the
        /// journal still has (`since: all`), or a duration back (`since: 2h`).
        package var start: JournalReader.Start = .tail
        /// Pass the rules' logsources to sd-journal as matches, so that entries no rule can see are
        /// not read at all (`match: rules`, the default) or read every entry (`match: none`).
        package var matchRules = true

        package init(directory: String? = nil, files: [String] = [], start: JournalReader.Start = .tail) {
            self.directory = directory
            self.files = files
            self.start = start
        }
    }

    package struct Listener: Sendable, Equatable {
        package enum Transport: String, Sendable, CaseIterable { case udp, tcp, unix, unixgram }
        package var transport: Transport
        /// Host and port for udp/tcp; a socket path for unix/unixgram.
        package var address: String
        package var port: Int?
        package var maxMessageBytes = 64 * 1024
        package var maxConnections = 256
    }

    package struct FileSource: Sendable, Equatable {
        package var path: String
        package var format: String = "auto"

        package init(path: String, format: String = "auto") {
            self.path = path
            self.format = format
        }
    }

    package enum Output: Sendable, Equatable {
        case stdout
        case file(path: String, fsync: FsyncPolicy)
        /// A unix stream socket that local consumers connect to.
        case socket(path: String, limits: SinkLimits = SinkLimits())
        /// RFC 5424 over TCP to a collector or SIEM.
        case syslog(host: String, port: Int, limits: SinkLimits = SinkLimits())
    }

    package enum FsyncPolicy: String, Sendable, CaseIterable { case always, batch, never }

    package var journal: Journal?
    package var syslog: [Listener] = []
    package var files: [FileSource] = []
    /// Rule directories or files; empty means the bundled pack.
    package var rules: [String] = []
    package var pipelines: String?
    package var outputs: [Output] = [.stdout]
    package var format: FindingFormat = .ocsf
    package var aggregateWindowSeconds = 300
    package var stateDirectory = "/var/lib/logtriage"
    package var triage: TriageMode = .builtin
    package var worker: WorkerSettings?

    /// The worker section, kept as written so the defaults live in one place (`WorkerConfiguration`).
    package struct WorkerSettings: Sendable, Equatable {
        package var url: String
        package var model: String?
        package var apiKeyFile: String?
        package var timeoutSeconds: Double?
        package var concurrency: Int?
        package var batchSize: Int?
        package var maxWaitSeconds: Double?
        package var tokensPerMinute: Int?
        package var queue: Int?
        package var deadlineSeconds: Double?
        package var hold = false
    }

    package init() {}

    /// The embedded defaults: the system journal, syslog on UDP and TCP 127.0.0.1:5514, the
    /// bundled rules, built-in triage, findings on standard output.
    package static let defaultsYAML = """
        sources:
          journal: {since: tail}
          syslog:
            - listen: udp://127.0.0.1:5514
            - listen: tcp://127.0.0.1:5514
        output:
          - stdout
        format: ocsf
        aggregate_window: 5m
        state_directory: /var/lib/logtriage
        triage:
          mode: builtin

        """

    package static var defaults: DaemonConfiguration {
        guard let c = parse(defaultsYAML, file: "<defaults>").0 else { preconditionFailure("the embedded defaults do not parse") }
        return c
    }

    /// A problem in a configuration file, with where it is.
    package struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        package var file: String
        package var line: Int
        package var message: String
        package var description: String { "\(file):\(line): \(message)" }
    }

    /// Reads and checks `path`; every problem found is returned, not just the first.
    package static func load(path: String) -> (DaemonConfiguration?, [Problem]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            return (nil, [Problem(file: path, line: 0, message: "cannot read the file")])
        }
        return parse(String(decoding: data, as: UTF8.self), file: path)
    }

    package static func parse(_ text: String, file: String) -> (DaemonConfiguration?, [Problem]) {
        var reader = Reader(file: file)
        let root: Node?
        do {
            root = try YAMLText.compose(text)
        } catch let error as YamlError {
            let e = RuleFileReader.yamlError(error, file: file)
            return (nil, [Problem(file: file, line: e.location.line, message: e.message)])
        } catch {
            return (nil, [Problem(file: file, line: 0, message: "YAML error: \(error)")])
        }
        guard let root else { return (nil, [Problem(file: file, line: 1, message: "the file is empty")]) }
        let config = reader.configuration(root)
        return (reader.problems.isEmpty ? config : nil, reader.problems)
    }

    /// Splits `udp://host:port`, `tcp://host:port`, `unix:///path` and `unixgram:///path`.
    package static func listener(_ url: String) -> Result<Listener, ListenerError> {
        guard let scheme = url.range(of: "://") else { return .failure("'\(url)' is not a URL such as udp://127.0.0.1:5514") }
        let name = String(url[..<scheme.lowerBound])
        let rest = String(url[scheme.upperBound...])
        guard let transport = Listener.Transport(rawValue: name) else {
            return .failure("unknown scheme '\(name)'; use udp, tcp, unix or unixgram")
        }
        switch transport {
        case .unix, .unixgram:
            guard rest.hasPrefix("/"), rest.utf8.count < 108 else {
                return .failure("'\(url)' needs an absolute socket path under 108 bytes")
            }
            return .success(Listener(transport: transport, address: rest))
        case .udp, .tcp:
            guard let (host, port) = hostPort(rest) else { return .failure("'\(url)' needs host:port, e.g. \(name)://127.0.0.1:5514") }
            return .success(Listener(transport: transport, address: host, port: port))
        }
    }

    package struct ListenerError: Error, Sendable, Equatable, ExpressibleByStringLiteral, ExpressibleByStringInterpolation {
        package var message: String
        package init(stringLiteral value: String) { message = value }
        package init(stringInterpolation: DefaultStringInterpolation) { message = String(stringInterpolation: stringInterpolation) }
    }

    /// `host:port` or `[v6]:port`.
    static func hostPort(_ s: String) -> (String, Int)? {
        var host: Substring
        var portText: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":") else { return nil }
            host = s[s.index(after: s.startIndex)..<close]
            portText = s[s.index(close, offsetBy: 2)...]
        } else {
            guard let colon = s.lastIndex(of: ":") else { return nil }
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
        }
        // Port 0 asks the kernel for a free port (listeners only; tests use it).
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        return (String(host), port)
    }

    /// Walks the YAML tree, collecting every problem with its line.
    private struct Reader {
        let file: String
        var problems: [Problem] = []

        mutating func problem(_ node: Node, _ message: String) {
            problems.append(Problem(file: file, line: node.mark?.line ?? 0, message: message))
        }

        mutating func mapping(_ node: Node, _ what: String, allowed: [String]) -> [(key: String, keyNode: Node, value: Node)] {
            guard let pairs = node.pairs else {
                problem(node, "\(what) must be a mapping")
                return []
            }
            var seen: Set<String> = []
            for p in pairs {
                if !allowed.contains(p.key) {
                    problem(p.keyNode, "unknown key '\(p.key)' in \(what); expected one of: \(allowed.joined(separator: ", "))")
                }
                if !seen.insert(p.key).inserted { problem(p.keyNode, "'\(p.key)' appears twice in \(what)") }
            }
            return pairs.filter { allowed.contains($0.key) }
        }

        mutating func string(_ node: Node, _ what: String) -> String? {
            guard case .scalar(let s) = node, !s.string.isEmpty else {
                problem(node, "\(what) must be a non-empty string")
                return nil
            }
            return s.string
        }

        mutating func path(_ node: Node, _ what: String) -> String? {
            guard let s = string(node, what) else { return nil }
            guard s.hasPrefix("/") || s.hasPrefix(".") else {
                problem(node, "\(what) must be an absolute path (or start with ./)")
                return nil
            }
            return s
        }

        mutating func integer(_ node: Node, _ what: String, _ range: ClosedRange<Int>) -> Int? {
            guard case .scalar(let s) = node, let v = Int(s.string) else {
                problem(node, "\(what) must be a whole number")
                return nil
            }
            guard range.contains(v) else {
                problem(node, "\(what) must be between \(range.lowerBound) and \(range.upperBound)")
                return nil
            }
            return v
        }

        mutating func bool(_ node: Node, _ what: String) -> Bool? {
            guard case .scalar(let s) = node, let v = Bool(s.string.lowercased()) else {
                problem(node, "\(what) must be true or false")
                return nil
            }
            return v
        }

        mutating func list(_ node: Node, _ what: String) -> [Node] {
            guard case .sequence(let seq) = node else {
                problem(node, "\(what) must be a list")
                return []
            }
            return Array(seq)
        }

        static func show(_ d: Double) -> String { d == d.rounded() ? String(Int(d)) : String(d) }

        /// A duration: seconds as a number, or a number with s, m, h or d.
        mutating func seconds(_ node: Node, _ what: String) -> Double? {
            guard case .scalar(let s) = node else {
                problem(node, "\(what) must be a duration such as 30s, 10m, 2h or 1d")
                return nil
            }
            var text = s.string
            var unit = 1.0
            if let last = text.last, let u = ["s": 1.0, "m": 60, "h": 3600, "d": 86400][String(last)] {
                unit = u
                text.removeLast()
            }
            guard let v = Double(text), v.isFinite, v >= 0 else {
                problem(node, "\(what) must be a duration such as 30s, 10m, 2h or 1d")
                return nil
            }
            return v * unit
        }

        mutating func configuration(_ root: Node) -> DaemonConfiguration {
            var c = DaemonConfiguration()
            c.outputs = []
            var sawOutput = false
            var triageNode = root
            for (key, _, value) in mapping(
                root, "the configuration",
                allowed: ["sources", "rules", "pipelines", "output", "format", "aggregate_window", "state_directory", "triage"])
            {
                switch key {
                case "sources": sources(value, into: &c)
                case "rules": c.rules = list(value, "rules").compactMap { path($0, "a rules entry") }
                case "pipelines": c.pipelines = path(value, "pipelines")
                case "output":
                    sawOutput = true
                    for item in list(value, "output") { if let o = output(item) { c.outputs.append(o) } }
                    if c.outputs.isEmpty, problems.isEmpty { problem(value, "output must name at least one destination") }
                case "format":
                    if let s = string(value, "format") {
                        if let f = FindingFormat(rawValue: s) { c.format = f } else { problem(value, "format must be ocsf or ecs") }
                    }
                case "aggregate_window":
                    if let s = seconds(value, "aggregate_window") { c.aggregateWindowSeconds = Int(s) }
                case "state_directory":
                    if let p = path(value, "state_directory") { c.stateDirectory = p }
                case "triage":
                    triageNode = value
                    triage(value, into: &c)
                default: break
                }
            }
            if !sawOutput { c.outputs = [.stdout] }
            if c.journal == nil, c.syslog.isEmpty, c.files.isEmpty {
                problem(root, "no sources: configure sources.journal, sources.syslog or sources.files")
            }
            if c.triage == .worker, c.worker == nil { problem(triageNode, "triage mode worker needs triage.worker.url") }
            return c
        }

        mutating func sources(_ node: Node, into c: inout DaemonConfiguration) {
            for (key, _, value) in mapping(node, "sources", allowed: ["journal", "syslog", "files"]) {
                switch key {
                case "journal":
                    if case .scalar(let s) = value, Bool(s.string.lowercased()) == false { continue }
                    var j = Journal()
                    if case .scalar(let s) = value, s.string.isEmpty || s.string == "~" || Bool(s.string.lowercased()) == true {
                        c.journal = j
                        continue
                    }
                    for (k, _, v) in mapping(value, "sources.journal", allowed: ["directory", "files", "namespace", "since", "match"]) {
                        switch k {
                        case "directory": j.directory = path(v, "sources.journal.directory")
                        case "namespace": j.namespace = string(v, "sources.journal.namespace")
                        case "match":
                            switch v.scalarText {
                            case "rules": j.matchRules = true
                            case "none": j.matchRules = false
                            default: problem(v, "sources.journal.match must be rules or none")
                            }
                        case "files": j.files = list(v, "sources.journal.files").compactMap { path($0, "a journal file") }
                        case "since":
                            if v.scalarText == "tail" {
                                j.start = .tail
                            } else if v.scalarText == "all" {
                                j.start = .head
                            } else if let s = seconds(v, "sources.journal.since") {
                                j.start = .since(Int64(s * 1_000_000))
                            }
                        default: break
                        }
                    }
                    if [j.directory != nil, !j.files.isEmpty, j.namespace != nil].filter({ $0 }).count > 1 {
                        problem(value, "sources.journal takes one of directory, files or namespace")
                    }
                    c.journal = j
                case "syslog":
                    for item in list(value, "sources.syslog") {
                        var listener: Listener?
                        for (k, _, v) in mapping(item, "a syslog listener", allowed: ["listen", "max_message_bytes", "max_connections"]) {
                            switch k {
                            case "listen":
                                guard let url = string(v, "listen") else { continue }
                                switch DaemonConfiguration.listener(url) {
                                case .success(let l): listener = l
                                case .failure(let why): problem(v, why.message)
                                }
                            default: break
                            }
                        }
                        guard var l = listener else {
                            if item.pairs?.contains(where: { $0.key == "listen" }) != true {
                                problem(item, "a syslog listener needs listen: URL")
                            }
                            continue
                        }
                        if let v = item.value(for: "max_message_bytes"), let n = integer(v, "max_message_bytes", 480...(16 << 20)) {
                            l.maxMessageBytes = n
                        }
                        if let v = item.value(for: "max_connections"), let n = integer(v, "max_connections", 1...65536) {
                            l.maxConnections = n
                        }
                        if c.syslog.contains(where: { $0.transport == l.transport && $0.address == l.address && $0.port == l.port }) {
                            problem(item, "the same listener is configured twice")
                        }
                        c.syslog.append(l)
                    }
                case "files":
                    for item in list(value, "sources.files") {
                        var f = FileSource(path: "")
                        for (k, _, v) in mapping(item, "a file source", allowed: ["path", "format"]) {
                            switch k {
                            case "path": f.path = path(v, "path") ?? ""
                            case "format":
                                if let s = string(v, "format") {
                                    if ["auto", "syslog", "jsonl", "journal-export"].contains(s) {
                                        f.format = s
                                    } else {
                                        problem(v, "format must be auto, syslog, jsonl or journal-export")
                                    }
                                }
                            default: break
                            }
                        }
                        if f.path.isEmpty {
                            if item.value(for: "path") == nil { problem(item, "a file source needs path") }
                            continue
                        }
                        c.files.append(f)
                    }
                default: break
                }
            }
        }

        mutating func output(_ node: Node) -> Output? {
            if case .scalar(let s) = node {
                if s.string == "stdout" { return .stdout }
                problem(node, "unknown output '\(s.string)'; use stdout, file:, socket: or syslog:")
                return nil
            }
            let pairs = mapping(node, "an output", allowed: ["file", "fsync", "socket", "syslog", "buffer_bytes", "max_block"])
            let kinds = pairs.filter { ["file", "socket", "syslog"].contains($0.key) }
            guard kinds.count == 1, let kind = kinds.first else {
                problem(node, "an output names exactly one of file:, socket: or syslog:")
                return nil
            }
            if pairs.contains(where: { $0.key == "fsync" }), kind.key != "file" { problem(node, "fsync applies to file outputs only") }
            var limits = SinkLimits()
            for (key, _, value) in pairs where key == "buffer_bytes" || key == "max_block" {
                if kind.key == "file" { problem(value, "\(key) applies to socket and syslog outputs") }
                if key == "buffer_bytes", let n = integer(value, "buffer_bytes", 1024...(1 << 30)) { limits.bufferBytes = n }
                if key == "max_block", let t = seconds(value, "max_block") { limits.maxBlockSeconds = t }
            }
            switch kind.key {
            case "file":
                guard let p = path(kind.value, "file") else { return nil }
                var policy = FsyncPolicy.batch
                if let v = node.value(for: "fsync"), let s = string(v, "fsync") {
                    if let f = FsyncPolicy(rawValue: s) { policy = f } else { problem(v, "fsync must be always, batch or never") }
                }
                return .file(path: p, fsync: policy)
            case "socket":
                guard let url = string(kind.value, "socket") else { return nil }
                guard url.hasPrefix("unix:///") else {
                    problem(kind.value, "socket must be a unix stream socket such as unix:///run/logtriage/findings.sock")
                    return nil
                }
                return .socket(path: String(url.dropFirst("unix://".count)), limits: limits)
            default:
                guard let url = string(kind.value, "syslog") else { return nil }
                guard url.hasPrefix("tcp://"), let (host, port) = DaemonConfiguration.hostPort(String(url.dropFirst(6))), port > 0 else {
                    problem(kind.value, "syslog output must be tcp://host:port (RFC 5424 over TCP)")
                    return nil
                }
                return .syslog(host: host, port: port, limits: limits)
            }
        }

        mutating func triage(_ node: Node, into c: inout DaemonConfiguration) {
            for (key, _, value) in mapping(node, "triage", allowed: ["mode", "worker"]) {
                switch key {
                case "mode":
                    if let s = string(value, "triage.mode") {
                        if let m = TriageMode(rawValue: s) {
                            c.triage = m
                        } else {
                            problem(value, "triage.mode must be builtin, worker or none")
                        }
                    }
                case "worker":
                    var w = WorkerSettings(url: "")
                    for (k, _, v) in mapping(
                        value, "triage.worker",
                        allowed: [
                            "url", "model", "api_key_file", "timeout", "concurrency", "batch_size", "max_wait", "tokens_per_minute",
                            "queue",
                            "deadline", "hold",
                        ])
                    {
                        switch k {
                        case "url":
                            if let u = string(v, "triage.worker.url") {
                                if u.hasPrefix("http://") || u.hasPrefix("https://") {
                                    w.url = u
                                } else {
                                    problem(v, "triage.worker.url must start with http:// or https://")
                                }
                            }
                        case "model": w.model = string(v, "triage.worker.model")
                        case "api_key_file": w.apiKeyFile = path(v, "triage.worker.api_key_file")
                        case "timeout": w.timeoutSeconds = seconds(v, "triage.worker.timeout")
                        case "concurrency": w.concurrency = integer(v, "triage.worker.concurrency", 1...64)
                        case "batch_size": w.batchSize = integer(v, "triage.worker.batch_size", 1...64)
                        case "max_wait": w.maxWaitSeconds = seconds(v, "triage.worker.max_wait")
                        case "tokens_per_minute": w.tokensPerMinute = integer(v, "triage.worker.tokens_per_minute", 1...100_000_000)
                        case "queue": w.queue = integer(v, "triage.worker.queue", 1...1_000_000)
                        case "deadline": w.deadlineSeconds = seconds(v, "triage.worker.deadline")
                        case "hold": w.hold = bool(v, "triage.worker.hold") ?? false
                        default: break
                        }
                    }
                    if w.url.isEmpty {
                        if value.value(for: "url") == nil { problem(value, "triage.worker needs url") }
                    } else {
                        c.worker = w
                    }
                default: break
                }
            }
        }
    }
}

extension DaemonConfiguration.WorkerSettings {
    /// The worker client settings: what the file says, `WorkerConfiguration`'s defaults elsewhere.
    package func configuration() throws -> WorkerConfiguration {
        var c = WorkerConfiguration(baseURL: url)
        c.model = model
        c.apiKey = try WorkerConfiguration.loadAPIKey(file: apiKeyFile)
        if let t = timeoutSeconds { c.requestTimeout = .milliseconds(Int(t * 1000)) }
        if let n = concurrency { c.concurrency = n }
        if let n = batchSize { c.batchSize = n }
        if let t = maxWaitSeconds { c.maxWait = .milliseconds(Int(t * 1000)) }
        c.tokensPerMinute = tokensPerMinute
        if let n = queue { c.queueCapacity = n }
        if let t = deadlineSeconds { c.deadline = .milliseconds(Int(t * 1000)) }
        return c
    }
}
