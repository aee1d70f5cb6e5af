import ArgumentParser
import Daemon
import Findings
import Foundation
import Ingest
import Logging
import Sigma
import Triage

/// Every command sets `commandName`. Without it ArgumentParser derives the name from the type
/// on each start, through `String(describing:)`, which searches the binary's protocol
/// conformances (about 18 M instructions per start).
@main
struct LogTriage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logtriage",
        abstract: "Security log triage: Sigma rules over journald and syslog, ranked and explained findings.",
        discussion: """
            Findings are OCSF Detection Finding JSON lines (or ECS with --format ecs) on standard output; \
            diagnostics and a one-line summary go to standard error.

            Examples:
              logtriage run --config /etc/logtriage/logtriage.yaml
              logtriage scan /var/log/auth.log
              journalctl -o json --since today | logtriage scan -
              logtriage rules lint /etc/logtriage/rules
            """,
        version: ScanPipeline.version,
        subcommands: [Run.self, Scan.self, Rules.self, Config.self, Bench.self]
    )
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon: follow log sources, detect, and write findings until SIGTERM.",
        discussion: """
            With --config FILE the daemon reads that file (see Deploy/logtriage.yaml and \
            `logtriage config check`); without it, the embedded defaults (`logtriage config defaults`): \
            the local journal from its tail, syslog on udp:// and tcp://127.0.0.1:5514, the bundled rules, \
            built-in triage, findings on stdout, state in /var/lib/logtriage. \
            Sources: the journal (sd-journal), syslog listeners, log files. Outputs: stdout, files, a unix \
            socket for local consumers, RFC 5424 over TCP. \
            Each source position is committed in the state directory only after the findings it produced \
            are written (and fsynced for file outputs), so a restart or crash resumes without losing findings. \
            SIGHUP reopens output files and reloads the configuration and rules (a reload with a broken rule \
            is refused and the running rules stay); SIGTERM and SIGINT drain and stop. Under systemd \
            (Type=notify) it reports READY=1, STATUS=, WATCHDOG=1, RELOADING=1 and STOPPING=1, and its log \
            lines carry priority prefixes.
            """)

    @Option(help: ArgumentHelp("Configuration file.", valueName: "file"))
    var config: String?

    func run() throws {
        let configuration: DaemonConfiguration
        if let config {
            let (parsed, problems) = DaemonConfiguration.load(path: config)
            for p in problems { printError("\(p)") }
            guard let parsed, problems.isEmpty else { throw ExitCode(1) }
            configuration = parsed
        } else {
            configuration = DaemonConfiguration.defaults
        }
        do {
            DaemonLogHandler.bootstrap()
            let runner = LiveRunner(configuration: configuration, logger: Logger(label: "logtriage"))
            runner.configurationPath = config
            let status = try runner.run()
            if status != 0 { throw ExitCode(status) }
        } catch let e as ExitCode {
            throw e
        } catch {
            printError("logtriage: \(error)")
            throw ExitCode(1)
        }
    }
}

struct Scan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Replay log files through the rules and print findings.",
        discussion: """
            Each input is read in the given or detected format: syslog (RFC 3164 and 5424, with or without \
            <PRI>), jsonl (one JSON object per line, as journalctl -o json prints), journal-export \
            (journalctl -o export) or audit (audit.log). Audit records, wherever they appear (audit.log, \
            syslog, laurel's JSON), are joined per event and programs they run become process_creation \
            events. Event time comes from the log, so aggregation and correlation windows follow the log.

            Exit status: 0 when every input was read, 1 when rules failed to load, 2 when an input failed.
            """)

    @Option(
        name: .customLong("rules"), help: ArgumentHelp("Rule file or directory; repeatable. Default: the bundled pack.", valueName: "path"))
    var rules: [String] = []

    @Option(
        help: ArgumentHelp(
            "Directory of pipeline files (logsource routing, field mappings, extractors). Default: the bundled pipelines.", valueName: "dir"
        ))
    var pipelines: String?

    @Option(help: ArgumentHelp("Input format: \(InputFormat.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "format"))
    var inputFormat: String = "auto"

    @Option(help: ArgumentHelp("Finding schema: ocsf or ecs.", valueName: "schema"))
    var format: String = "ocsf"

    @Option(
        help: ArgumentHelp(
            "Triage: builtin (deterministic score and explanation), worker (builtin first, then the inference worker's), or none.",
            valueName: "mode"))
    var triage: String = "builtin"

    @OptionGroup(title: "Inference worker (with --triage worker)")
    var worker: WorkerOptions

    @Option(
        help: ArgumentHelp(
            "Year for syslog stamps that carry none. Default: inferred from the file's modification time.", valueName: "year"))
    var year: Int?

    @Option(
        help: ArgumentHelp(
            "Repeats of a rule on the same source, user and host within this many seconds fold into one finding; 0 disables.",
            valueName: "seconds"))
    var aggregateWindow: Int = 300

    @Option(help: ArgumentHelp("Lines longer than this are cut (and counted).", valueName: "bytes"))
    var maxLineBytes: Int = 1 << 20

    @Flag(help: "Do not show the progress line that a terminal on standard error otherwise gets.")
    var noProgress = false

    @Argument(help: ArgumentHelp("Log files to read; - reads standard input.", valueName: "file"))
    var files: [String]

    func validate() throws {
        guard InputFormat(rawValue: inputFormat) != nil else {
            throw ValidationError("--input-format must be one of \(InputFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard FindingFormat(rawValue: format) != nil else { throw ValidationError("--format must be ocsf or ecs") }
        guard let mode = TriageMode(rawValue: triage) else { throw ValidationError("--triage must be builtin, worker or none") }
        if mode == .worker, worker.workerURL == nil {
            throw ValidationError("--triage worker needs --worker-url (for example http://127.0.0.1:8089/v1)")
        }
        guard aggregateWindow >= 0 else { throw ValidationError("--aggregate-window must not be negative") }
        guard !files.isEmpty else { throw ValidationError("name at least one file, or - for standard input") }
    }

    func run() async throws {
        var config = ScanConfiguration()
        config.rulePaths = rules
        config.pipelineDirectory = pipelines
        config.reader.format = InputFormat(rawValue: inputFormat)!
        config.reader.year = year
        config.reader.maxLineBytes = maxLineBytes
        config.format = FindingFormat(rawValue: format)!
        config.triage = TriageMode(rawValue: triage)!
        config.aggregateWindowSeconds = aggregateWindow
        config.showProgress = !noProgress && isatty(2) == 1
        config.holdForWorker = worker.workerHold
        let pipeline: ScanPipeline
        do {
            pipeline = try ScanPipeline(configuration: config)
        } catch {
            printError("logtriage: \(error)")
            throw ExitCode(1)
        }
        for e in pipeline.loadReport.errors { printError("\(e)") }
        if pipeline.loadReport.loaded == 0 {
            printError("logtriage: no rules loaded")
            throw ExitCode(1)
        }
        let out = SharedOutput(fd: 1)
        let summary: ScanSummary
        if config.triage == .worker {
            let outcome = await TriagedScan.run(
                pipeline: pipeline, inputs: files, worker: try worker.configuration(), output: out,
                diagnostic: { printError("logtriage: \($0)") })
            summary = outcome.summary
            printError("logtriage: " + summary.line)
            printError("logtriage: " + outcome.triage.line + " (model \(outcome.model))")
        } else {
            summary = pipeline.run(inputs: files, emit: { _, bytes in out.write(bytes) }, diagnostic: { printError("logtriage: \($0)") })
            printError("logtriage: " + summary.line)
        }
        if out.flush() != nil { throw ExitCode(2) }
        if summary.filesFailed > 0 { throw ExitCode(2) }
    }
}

struct Rules: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Check and test Sigma rules.", subcommands: [Lint.self, Test.self, Literals.self])

    struct Lint: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lint",
            abstract: "Load rules and report every problem as file:line: message.",
            discussion: "Prints 'N loaded, M rejected' last; exits 1 if any rule is rejected.")

        @OptionGroup var rules: RuleSetOptions

        @Flag(help: "Also print warnings (deprecated rules and the like).")
        var warnings = false

        func run() throws {
            let (_, report) = try rules.load()
            for e in report.errors { print(e) }
            if warnings { for w in report.warnings { print("\(w) (warning)") } }
            print("\(report.loaded) loaded, \(report.rejected) rejected")
            if report.rejected > 0 { throw ExitCode(1) }
        }
    }

    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "test",
            abstract: "Run rule tests: fixture lines and the matches each rule must give.",
            discussion: "PATH is a rules directory holding a tests/ folder; default: the bundled rules.")

        @Argument(help: ArgumentHelp("Rules directory.", valueName: "path"))
        var path: String?

        func run() throws {
            let root = try path ?? BundledRules.require()
            let pipeline = try loadPipeline(FileManager.default.fileExists(atPath: root + "/pipelines") ? root + "/pipelines" : nil)
            let (set, report) = RuleSet.load(paths: [root], pipeline: pipeline)
            for e in report.errors { print(e) }
            let outcome = RuleTestRunner(rules: set).run(files: RuleTestRunner.testFiles(in: root + "/tests"))
            for f in outcome.failures { print("FAIL \(f)") }
            for u in outcome.untested { print("untested: \(u)") }
            print("\(outcome.passed) passed, \(outcome.failures.count) failed")
            if !outcome.failures.isEmpty || report.rejected > 0 { throw ExitCode(1) }
        }
    }
}

extension Rules {
    struct Literals: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "literals",
            abstract: "Print the literal patterns the prefilter searches for, one per line (for comparisons with grep tools).")

        @OptionGroup var rules: RuleSetOptions

        func run() throws {
            let (set, _) = try rules.load()
            for literal in set.prefilterLiterals.map({ String(decoding: $0, as: UTF8.self) }).sorted() { print(literal) }
        }
    }
}

/// Rule paths and the pipelines to load them with, shared by the rules subcommands.
struct RuleSetOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Directory of pipeline files. Default: the bundled pipelines.", valueName: "dir"))
    var pipelines: String?

    @Argument(help: ArgumentHelp("Rule files or directories.", valueName: "path"))
    var paths: [String]

    func load() throws -> (RuleSet, LoadReport) {
        RuleSet.load(paths: paths, pipeline: try loadPipeline(pipelines))
    }
}

func loadPipeline(_ dir: String?) throws -> Pipeline {
    do {
        return try Pipeline.load(directory: dir ?? BundledRules.require() + "/pipelines")
    } catch let e as RuleError {
        printError("logtriage: \(e)")
        throw ExitCode(1)
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure parts of the pipeline in isolation.",
        subcommands: [Correlation.self, TriageBench.self, JournalBench.self, AuditBench.self])

    struct AuditBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "audit",
            abstract: "Parse and assemble generated audit.log records; then feed records whose EOE never comes.")

        @Option(help: "execve events to generate (six records each).")
        var events = 200_000

        @Option(help: "Records without EOE for the memory pass.")
        var orphans = 1_000_000

        func run() {
            let r = AuditBenchmark.run(events: events, orphans: orphans)
            print(
                String(
                    format: "audit: %d records (%d events, %.1f MB) in %.2f s = %.0f records/s, %.1f MB/s", r.records, r.events,
                    Double(r.bytes) / 1e6, r.seconds, Double(r.records) / r.seconds, Double(r.bytes) / 1e6 / r.seconds))
            print(
                String(
                    format: "audit: %d records without EOE: at most %d waited at once; RSS grew %.1f MB", r.orphans, r.peakPending,
                    r.orphanRSSGrowth))
        }
    }

    struct JournalBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "journal",
            abstract: "Read a journal directory through the journal source and compare with `journalctl -o export` on the same files.",
            discussion: "scripts/bench-journal.sh writes a 1,000,000-entry journal with systemd-journal-remote and runs this.")

        @Option(help: ArgumentHelp("Journal directory to read.", valueName: "dir"))
        var directory: String

        @Option(
            name: .customLong("rules"),
            help: ArgumentHelp("Rules for the read-and-detect pass (default: the bundled pack).", valueName: "path"))
        var rules: [String] = []

        @Flag(help: "Only the read pass: no detection, no journalctl.")
        var readOnly = false

        @Option(help: "Rounds of the reading passes, interleaved; the best of each is reported.")
        var rounds = 5

        func run() throws {
            var config = ScanConfiguration()
            config.rulePaths = rules
            config.triage = .builtin
            let r = try JournalBenchmark.run(directory: directory, rules: config, detect: !readOnly, rounds: rounds)
            if readOnly {
                print(
                    String(
                        format: "journal source, read: %d entries in %.2f s = %.0f entries/s; RSS %.1f MB anonymous + %.1f MB file-backed",
                        r.entries, r.readSeconds, Double(r.entries) / r.readSeconds, r.readRSS.anon, r.readRSS.file))
                return
            }
            let read = Double(r.entries) / r.readSeconds
            let exported = Double(r.entries) / r.journalctlSeconds
            let bare = Double(r.entries) / r.sdJournalSeconds
            print("journal: \(r.entries) entries in \(directory); reading passes: best of \(r.rounds) interleaved rounds")
            print(String(format: "  journal source, read:      %.2f s = %.0f entries/s", r.readSeconds, read))
            print(
                String(
                    format: "  sd-journal alone:          %.2f s = %.0f entries/s (step, stamps, enumerate every field)",
                    r.sdJournalSeconds, bare))
            print(
                String(
                    format: "  journal source, + detect:  %.2f s = %.0f entries/s, %d findings", r.detectSeconds,
                    Double(r.entries) / r.detectSeconds, r.findings))
            print(String(format: "  journalctl -o export:      %.2f s = %.0f entries/s (to /dev/null)", r.journalctlSeconds, exported))
            print(
                String(format: "  ratio read / journalctl:   %.2f (sd-journal alone / journalctl: %.2f)", read / exported, bare / exported))
            print(
                String(
                    format:
                        "  memory after the read pass: RSS %.1f MB = %.1f MB anonymous + %.1f MB file-backed (sd-journal's mapped windows)",
                    r.readRSS.anon + r.readRSS.file, r.readRSS.anon, r.readRSS.file))
        }
    }

    struct Correlation: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "correlation",
            abstract: "Feed synthetic failed logins through a value_count correlation and print events/s and memory.")

        @Option(help: "Events to feed.")
        var events = 1_000_000

        @Option(help: "Distinct sources (groups) among them.")
        var sources = 1_000_000

        @Option(help: "Group cap of the correlation engine.")
        var maxGroups = 100_000

        func run() throws {
            let r = try CorrelationBenchmark.run(events: events, sources: sources, maxGroups: maxGroups)
            print("correlation: \(r.events) events, \(sources) distinct sources, cap \(maxGroups) groups")
            print(String(format: "  %.0f events/s (%.2f s)", Double(r.events) / r.seconds, r.seconds))
            print("  groups held at the end: \(r.groups), evictions: \(r.evictions), incidents: \(r.incidents)")
            print(
                String(
                    format: "  RSS before %.1f MB, after %.1f MB (state %.1f MB), process peak %.1f MB", r.rssBeforeMB, r.rssAfterMB,
                    r.rssAfterMB - r.rssBeforeMB, r.peakMB))
        }
    }
}

/// How to reach and use the inference worker; shared by `scan` and `bench triage`.
struct WorkerOptions: ParsableArguments {
    @Option(
        name: .customLong("worker-url"),
        help: ArgumentHelp("OpenAI-compatible API base, e.g. http://127.0.0.1:8089/v1 (llama-server, Ollama, vLLM).", valueName: "url"))
    var workerURL: String?

    @Option(
        name: .customLong("worker-model"), help: ArgumentHelp("Model to request. Default: the first the worker lists.", valueName: "name"))
    var workerModel: String?

    @Option(
        name: .customLong("worker-api-key-file"),
        help: ArgumentHelp(
            "File holding the bearer token. Default: the systemd credential worker-api-key, if any.", valueName: "path"))
    var workerAPIKeyFile: String?

    @Option(name: .customLong("worker-timeout"), help: ArgumentHelp("Seconds one request may take.", valueName: "seconds"))
    var workerTimeout: Double = 60

    @Option(name: .customLong("worker-concurrency"), help: ArgumentHelp("Requests in flight at once.", valueName: "n"))
    var workerConcurrency = 2

    @Option(name: .customLong("worker-batch-size"), help: ArgumentHelp("Findings per request.", valueName: "n"))
    var workerBatchSize = 4

    @Option(
        name: .customLong("worker-max-wait"),
        help: ArgumentHelp("Seconds a finding waits for its batch to fill before a smaller one is sent.", valueName: "seconds"))
    var workerMaxWait: Double = 2

    @Option(
        name: .customLong("worker-tokens-per-minute"),
        help: ArgumentHelp("Budget of estimated prompt and completion tokens per minute. Default: none.", valueName: "n"))
    var workerTokensPerMinute: Int?

    @Option(
        name: .customLong("worker-queue"),
        help: ArgumentHelp("Findings that may wait for the worker; beyond it the least severe keep built-in triage.", valueName: "n"))
    var workerQueue = 1000

    @Option(
        name: .customLong("worker-deadline"),
        help: ArgumentHelp("Seconds from detection after which a finding keeps built-in triage.", valueName: "seconds"))
    var workerDeadline: Double = 120

    @Flag(
        name: .customLong("worker-hold"),
        help: "Write each finding once, when the model's triage arrives or its deadline passes, instead of at once plus an update.")
    var workerHold = false

    func validate() throws {
        guard workerTimeout > 0, workerMaxWait >= 0, workerDeadline > 0 else {
            throw ValidationError("worker timeouts and deadlines must be positive")
        }
        guard workerConcurrency >= 1, workerBatchSize >= 1, workerQueue >= 1 else {
            throw ValidationError("--worker-concurrency, --worker-batch-size and --worker-queue must be at least 1")
        }
        if let url = workerURL, !(url.hasPrefix("http://") || url.hasPrefix("https://")) {
            throw ValidationError("--worker-url must start with http:// or https://")
        }
    }

    func configuration() throws -> WorkerConfiguration {
        var c = WorkerConfiguration(baseURL: workerURL ?? "http://127.0.0.1:8089/v1")
        c.model = workerModel
        do {
            c.apiKey = try WorkerConfiguration.loadAPIKey(file: workerAPIKeyFile)
        } catch {
            printError("logtriage: \(error)")
            throw ExitCode(1)
        }
        c.requestTimeout = .milliseconds(Int(workerTimeout * 1000))
        c.concurrency = workerConcurrency
        c.batchSize = workerBatchSize
        c.maxWait = .milliseconds(Int(workerMaxWait * 1000))
        c.tokensPerMinute = workerTokensPerMinute
        c.queueCapacity = workerQueue
        c.deadline = .milliseconds(Int(workerDeadline * 1000))
        return c
    }
}

extension Bench {
    struct TriageBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "triage",
            abstract: "Time the built-in triager per finding; with --worker-url, findings triaged per minute and a burst.",
            discussion: """
                With a worker: for each batch size, --findings findings are triaged (one request in flight, so \
                the numbers compare batch sizes, not concurrency); then a burst of --burst findings is queued at \
                once with the given queue, deadline and concurrency, and the output says how many got model \
                triage and whether the most severe went first.
                """)

        @Option(help: "Findings for the built-in timing.")
        var builtinFindings = 20_000

        @Option(help: "Passes over them.")
        var rounds = 10

        @Option(help: ArgumentHelp("Batch sizes to measure with the worker.", valueName: "n,n,..."))
        var batchSizes = "1,4,8,16"

        @Option(help: "Findings per batch-size measurement.")
        var findings = 16

        @Option(help: "Findings in the burst.")
        var burst = 1000

        @OptionGroup(title: "Inference worker")
        var worker: WorkerOptions

        func run() async throws {
            let sample = try TriageBenchmark.findings(count: builtinFindings)
            let b = TriageBenchmark.builtin(sample, rounds: rounds)
            print(
                String(
                    format: "builtin triage: %.2f µs per finding (%d calls over %d distinct findings)", b.perFinding / 1000, b.calls,
                    sample.count))
            guard worker.workerURL != nil else { return }
            let base = try worker.configuration()
            for size in batchSizes.split(separator: ",").compactMap({ Int($0) }) {
                var c = base
                c.batchSize = size
                c.concurrency = 1
                c.maxWait = .milliseconds(100)
                let r = await TriageBenchmark.worker(Array(sample.prefix(findings)), configuration: c, burst: false)
                let perMinute = Double(r.statistics.modelTriaged) / r.seconds * 60
                print(
                    String(
                        format:
                            "worker batch %2d: %d findings in %.1f s: %.1f model-triaged per minute (%d by the model, %d kept built-in%@)",
                        size, r.findings, r.seconds, perMinute, r.statistics.modelTriaged, r.statistics.keptBuiltin,
                        r.statistics.reasons.isEmpty
                            ? "" : ": " + r.statistics.reasons.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", ")))
            }
            let r = await TriageBenchmark.worker(Array(sample.prefix(burst)), configuration: base, burst: true)
            print(
                "burst of \(r.findings) (queue \(base.queueCapacity), batch \(base.batchSize), concurrency \(base.concurrency), deadline \(base.deadline)): "
                    + String(format: "%.1f s; ", r.seconds)
                    + "\(r.statistics.modelTriaged) by the model, \(r.statistics.keptBuiltin) kept built-in "
                    + "(" + r.statistics.reasons.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", ") + ")")
            let steps = zip(r.modelScores, r.modelScores.dropFirst())
            let inOrder = steps.filter { $0 >= $1 }.count
            print(
                "  worst first: model-triaged built-in scores \(r.modelScores.min() ?? 0)-\(r.modelScores.max() ?? 0), "
                    + "the rest \(r.builtinScores.min() ?? 0)-\(r.builtinScores.max() ?? 0); "
                    + "\(inOrder) of \(max(0, r.modelScores.count - 1)) consecutive answers in non-increasing score order")
        }
    }
}

struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check a daemon configuration file, or print the embedded defaults.",
        subcommands: [Check.self, Defaults.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Validate a configuration file; every problem is printed as file:line: message.",
            discussion: "Exit status 0 when the file is valid, 1 otherwise.")

        @Argument(help: ArgumentHelp("Configuration file (see Deploy/logtriage.yaml).", valueName: "file"))
        var file: String

        func run() throws {
            let (config, problems) = DaemonConfiguration.load(path: file)
            for p in problems { print(p) }
            guard let config, problems.isEmpty else { throw ExitCode(1) }
            var sources: [String] = []
            if let j = config.journal {
                sources.append(
                    j.directory.map { "journal \($0)" } ?? (j.files.isEmpty ? "system journal" : "\(j.files.count) journal files"))
            }
            sources += config.syslog.map { l in "syslog \(l.transport.rawValue)://\(l.port.map { "\(l.address):\($0)" } ?? l.address)" }
            sources += config.files.map { "file \($0.path)" }
            print("\(file): ok: \(sources.joined(separator: ", ")); \(config.outputs.count) outputs; triage \(config.triage.rawValue)")
        }
    }

    struct Defaults: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "defaults", abstract: "Print the configuration logtriage run uses without a file.")

        func run() {
            print(DaemonConfiguration.defaultsYAML, terminator: "")
        }
    }
}
