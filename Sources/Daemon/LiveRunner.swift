import CSystemd
import EventModel
import Findings
import Foundation
import Ingest
import Synchronization
import Triage

#if canImport(Glibc)
    import Glibc
#endif

/// `logtriage run`: follows the configured log files, detects, writes findings, and commits
/// each file's position only after the findings it produced are durable in every output.
///
/// This version serves file sources, syslog listeners, the stdout and file outputs and worker
/// triage; the journal source and socket and syslog outputs are refused with a clear message
/// rather than silently ignored.
package final class LiveRunner {
    package let configuration: DaemonConfiguration
    private let diagnostic: (String) -> Void
    /// How long the loop sleeps when no source had new lines.
    package var idleInterval: Duration = .milliseconds(100)
    /// Longest time between commits while a backlog is read.
    package var commitInterval: Duration = .seconds(1)
    /// Longest time between saves of the correlation windows.
    package var snapshotInterval: Duration = .seconds(30)
    /// How long a stop waits for worker answers still in flight.
    package var shutdownGrace: Double = 5

    package init(configuration: DaemonConfiguration, diagnostic: @escaping (String) -> Void) {
        self.configuration = configuration
        self.diagnostic = diagnostic
    }

    package struct Refusal: Error, CustomStringConvertible {
        package var description: String
    }

    /// What this version cannot serve yet, each as a sentence; empty when it can run.
    package static func unsupported(_ c: DaemonConfiguration) -> [String] {
        var out: [String] = []
        if c.journal != nil { out.append("the journal source is not part of this version; remove sources.journal or use sources.files") }
        for o in c.outputs {
            switch o {
            case .socket: out.append("socket outputs are not part of this version")
            case .syslog: out.append("syslog outputs are not part of this version")
            default: break
            }
        }
        if c.triage == .worker, c.worker?.hold == true {
            out.append(
                "triage.worker.hold is for scan: the daemon writes each finding at once so it is durable before its position is committed")
        }
        return out
    }

    /// Runs until SIGTERM or SIGINT, then drains and commits. Returns the exit status.
    package func run() throws -> Int32 {
        let c = configuration
        let refused = Self.unsupported(c)
        guard refused.isEmpty else { throw Refusal(description: refused.joined(separator: "; ")) }
        guard !c.files.isEmpty || !c.syslog.isEmpty else {
            throw Refusal(description: "no sources: configure sources.files or sources.syslog")
        }

        var scan = ScanConfiguration()
        scan.rulePaths = c.rules
        scan.pipelineDirectory = c.pipelines
        scan.format = c.format
        scan.triage = c.triage
        scan.aggregateWindowSeconds = c.aggregateWindowSeconds
        let pipeline = try ScanPipeline(configuration: scan)
        for e in pipeline.loadReport.errors { diagnostic("\(e)") }
        guard pipeline.loadReport.loaded > 0 else { throw Refusal(description: "no rules loaded") }

        let store = CheckpointStore(directory: c.stateDirectory)
        var (saved, warning) = try store.load()
        if let warning { diagnostic(warning) }
        var detector = Detector(rules: pipeline.rules, configuration: scan, live: true)
        if let state = saved.correlationState {
            do {
                var engine = detector.correlations
                try engine.restore(Array(state))
                detector.replaceCorrelations(engine)
            } catch {
                diagnostic("correlation state in \(store.path) not restored (\(error)); windows start empty")
            }
        }
        let outputs = try Outputs(c.outputs)
        let tails = c.files.map { FileTail(path: $0.path, checkpoint: saved.files[$0.path]) }
        var decoders = c.files.map { LineDecoder(format: InputFormat(rawValue: $0.format) ?? .auto, now: Self.now()) }

        // Worker triage: findings are written at once with built-in triage (that write is what a
        // commit waits for) and queued; the model's answers follow as updates of the same uid.
        var triager: WorkerTriager?
        var consumers: Task<Void, Never>?
        if c.triage == .worker, let settings = c.worker {
            let client = WorkerClient(configuration: try settings.configuration())
            let found = Self.wait { await WorkerTriager.discover(client) }
            if let problem = found.problem {
                diagnostic("worker \(client.configuration.baseURL): \(problem); findings keep built-in triage while it is away")
            }
            let encoder = FindingEncoder(format: c.format, productVersion: ScanPipeline.version)
            let t = WorkerTriager(client: client, model: found.model, provider: found.provider, hold: false) { f in
                outputs.write(encoder.encode(f))
            }
            triager = t
            // Owned here and awaited (for a bounded time) before this function returns.
            consumers = Task.detached {
                await t.run()
                await client.shutdown()
            }
        }

        let ingress = IngressQueue()
        let listeners = SyslogListeners(queue: ingress)
        try listeners.start(c.syslog)
        defer { listeners.stop() }
        for a in listeners.addresses { diagnostic("listening on \(a)") }
        var network = LineDecoder(format: .syslog, now: Self.now())
        var received = 0
        // Network messages have no durable position: their sequence number within this run, with
        // the run's start in the cursor, keeps finding uids distinct across restarts.
        let run = "run-\(Self.now())"

        Signals.install()
        Notify.send("READY=1\nSTATUS=following \(tails.count) files, \(listeners.addresses.count) syslog listeners")
        var statistics = ReadStatistics()
        var findings = 0
        var lastStatus = ContinuousClock.now
        var lastYearCheck = ContinuousClock.now
        var lastCommit = ContinuousClock.now
        var lastSnapshot = ContinuousClock.now
        var lastPing = ContinuousClock.now - .seconds(3600)
        var uncommitted = false
        let clock = ContinuousClock()

        func write(_ f: Finding) {
            outputs.write(pipeline.encode(f))
            findings += 1
            triager?.submit(f)
        }

        func commit(final: Bool = false) throws {
            try outputs.makeDurable()
            let held = detector.heldPositions()
            for i in tails.indices {
                guard var checkpoint = tails[i].checkpoint else { continue }
                // A failure a session still holds sits before the read position: keep it re-readable.
                if let p = held[tails[i].path], p.offset < checkpoint.offset {
                    checkpoint.offset = p.offset
                    checkpoint.line = max(0, p.line - 1)
                }
                saved.files[tails[i].path] = checkpoint
            }
            // The correlation windows are the costly part of a checkpoint (every group's recent
            // events). With files they are saved with every commit, so that positions and windows
            // always match; with network sources only (nothing to replay) at most every
            // snapshotInterval and at stop.
            if final || !tails.isEmpty || clock.now - lastSnapshot >= snapshotInterval {
                saved.correlationState = (try? detector.correlations.snapshot()).map { Data($0) }
                lastSnapshot = clock.now
            } else {
                return
            }
            try store.save(saved)
        }

        while !Signals.stopRequested {
            if Signals.takeReload() {
                outputs.reopen(diagnostic)
                diagnostic("SIGHUP: outputs reopened")
            }
            let now = Self.now()
            if clock.now - lastYearCheck > .seconds(60) {
                for i in decoders.indices { decoders[i].setNow(now) }
                network.setNow(now)
                lastYearCheck = clock.now
            }
            var lines = 0
            for i in tails.indices {
                do {
                    lines += try tails[i].poll(maxLines: 20_000) { line, position, cut in
                        statistics.lines += 1
                        if cut { statistics.truncated += 1 }
                        let (event, parsed) = decoders[i].decode(line, position: position)
                        if !parsed { statistics.unparsable += 1 }
                        guard var event else { return }
                        statistics.events += 1
                        detector.process(&event, now: now, deliver: write)
                    }
                } catch {
                    diagnostic("\(tails[i].path): \(error)")
                }
            }
            for m in ingress.drain() {
                received += 1
                lines += 1
                statistics.lines += 1
                if m.truncated { statistics.truncated += 1 }
                let position = SourcePosition(
                    source: listeners.addresses[m.listener], line: received, offset: UInt64(received), cursor: run)
                let (event, parsed) = m.bytes.withUnsafeBufferPointer { network.decode($0, position: position) }
                if !parsed { statistics.unparsable += 1 }
                guard var event else { continue }
                statistics.events += 1
                detector.process(&event, now: now, deliver: write)
            }
            detector.advance(to: now, deliver: write)
            // Triage updates arrive between lines: buffered outputs must reach disk then too.
            if lines > 0 || outputs.pending { uncommitted = true }
            // Commit when caught up, and at least every commitInterval while catching up: each
            // commit fsyncs and rewrites the checkpoint, so not after every batch of lines.
            if uncommitted, lines == 0 || clock.now - lastCommit >= commitInterval {
                try commit()
                uncommitted = false
                lastCommit = clock.now
            }
            // The ping comes from the loop itself: a stuck pipeline stops it and systemd restarts us.
            if let interval = Notify.watchdogInterval, clock.now - lastPing >= interval / 2 {
                Notify.send("WATCHDOG=1")
                lastPing = clock.now
            }
            if clock.now - lastStatus > .seconds(5) {
                Notify.send("STATUS=\(statistics.lines) lines, \(findings) findings, \(ingress.counters.dropped) syslog messages dropped")
                lastStatus = clock.now
            }
            if lines == 0 {
                Thread.sleep(forTimeInterval: Double(idleInterval.components.attoseconds) / 1e18 + Double(idleInterval.components.seconds))
            }
        }
        Notify.send("STOPPING=1")
        // Sources stop first: no new connections or datagrams; what already arrived is detected.
        listeners.stop()
        for m in ingress.drain() {
            received += 1
            let position = SourcePosition(source: listeners.addresses[m.listener], line: received, offset: UInt64(received), cursor: run)
            let (event, _) = m.bytes.withUnsafeBufferPointer { network.decode($0, position: position) }
            guard var event else { continue }
            detector.process(&event, now: Self.now(), deliver: write)
        }
        detector.finish(now: Self.now(), deliver: write)
        try commit(final: true)
        if let triager, let consumers {
            // Bounded drain: answers that arrive within the grace period are written; findings
            // still waiting keep the built-in triage they were written with.
            triager.finish()
            let done = Self.wait(timeout: shutdownGrace) { await consumers.value }
            if done == nil {
                diagnostic(
                    "stopping without waiting for \(triager.statistics.submitted - triager.statistics.modelTriaged - triager.statistics.keptBuiltin) worker answers"
                )
            }
            try outputs.makeDurable()
            diagnostic(triager.statistics.line)
        }
        let net = ingress.counters
        diagnostic(
            "stopped: \(statistics.lines) lines, \(statistics.events) events, \(statistics.unparsable) unparsable, \(statistics.truncated) truncated; \(findings) findings; syslog: \(net.received) received, \(net.dropped) dropped (queue full), \(net.refusedConnections) connections refused"
        )
        return 0
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }

    /// Runs async work from this synchronous loop thread and waits for it (at most `timeout` seconds).
    static func wait<T: Sendable>(timeout: Double? = nil, _ work: @escaping @Sendable () async -> T) -> T? {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            box.set(await work())
            done.signal()
        }
        if let timeout {
            guard done.wait(timeout: .now() + timeout) == .success else { return nil }
        } else {
            done.wait()
        }
        return box.value
    }

    static func wait<T: Sendable>(_ work: @escaping @Sendable () async -> T) -> T {
        wait(timeout: nil, work)!
    }

    private final class ResultBox<T: Sendable>: Sendable {
        private let stored = Mutex<T?>(nil)
        func set(_ v: T) { stored.withLock { $0 = v } }
        var value: T? { stored.withLock { $0 } }
    }

    /// Where findings go: each output gets every line; `makeDurable` flushes (and fsyncs, per policy) all of them.
    /// Shared by the detection loop and the worker triager's consumers; every call holds the lock.
    final class Outputs: @unchecked Sendable {
        private let lock = NSLock()
        private var stdout: SharedOutput?
        private var files: [(path: String, fsync: DaemonConfiguration.FsyncPolicy, fd: Int32, out: SharedOutput)] = []
        private var dirty = false
        var pending: Bool { lock.withLock { dirty } }

        init(_ outputs: [DaemonConfiguration.Output]) throws {
            for o in outputs {
                switch o {
                case .stdout: stdout = SharedOutput(fd: 1)
                case .file(let path, let policy):
                    let fd = try Self.open(path)
                    files.append((path, policy, fd, SharedOutput(fd: fd)))
                case .socket, .syslog: break
                }
            }
        }

        static func open(_ path: String) throws -> Int32 {
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
            guard fd >= 0 else { throw Refusal(description: "\(path): \(String(cString: strerror(errno)))") }
            return fd
        }

        func write(_ line: [UInt8]) {
            lock.withLock {
                dirty = true
                stdout?.write(line)
                for f in files {
                    f.out.write(line)
                    // A failure is kept by the output and raised by the next makeDurable.
                    if f.fsync == .always { _ = f.out.sync() }
                }
            }
        }

        /// Every output flushed (and fsynced, per policy); throws the first write failure, so a
        /// position is never committed past findings an output did not take.
        func makeDurable() throws {
            lock.lock()
            defer { lock.unlock() }
            guard dirty else { return }
            if let failed = stdout?.flush() { throw Refusal(description: "standard output: \(String(cString: strerror(failed)))") }
            for f in files {
                if let failed = f.fsync == .never ? f.out.flush() : f.out.sync() {
                    throw Refusal(description: "\(f.path): \(String(cString: strerror(failed)))")
                }
            }
            dirty = false
        }

        /// After logrotate moved the findings file: write to a new file at the configured path.
        func reopen(_ diagnostic: (String) -> Void) {
            lock.lock()
            defer { lock.unlock() }
            for i in files.indices {
                do {
                    let fd = try Self.open(files[i].path)
                    _ = files[i].out.flush()
                    close(files[i].fd)
                    files[i].fd = fd
                    files[i].out = SharedOutput(fd: fd)
                } catch {
                    diagnostic("\(error); still writing to the old file")
                }
            }
        }
    }
}

/// SIGTERM and SIGINT ask the loop to stop; SIGHUP asks it to reopen outputs.
enum Signals {
    private static let stop = Atomic<Bool>(false)
    private static let reload = Atomic<Bool>(false)

    static func install() {
        signal(SIGTERM) { _ in Signals.stop.store(true, ordering: .relaxed) }
        signal(SIGINT) { _ in Signals.stop.store(true, ordering: .relaxed) }
        signal(SIGHUP) { _ in Signals.reload.store(true, ordering: .relaxed) }
        signal(SIGPIPE, SIG_IGN)
    }

    static var stopRequested: Bool { stop.load(ordering: .relaxed) }

    static func takeReload() -> Bool { reload.exchange(false, ordering: .relaxed) }
}

/// sd_notify(3) messages to the service manager; nothing happens without NOTIFY_SOCKET.
enum Notify {
    static func send(_ state: String) { _ = sd_notify(0, state) }

    /// WATCHDOG_USEC, when the service manager asked for pings.
    static let watchdogInterval: Duration? = {
        var usec: UInt64 = 0
        return sd_watchdog_enabled(0, &usec) > 0 ? .microseconds(Int64(usec)) : nil
    }()
}
