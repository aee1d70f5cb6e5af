import CSystemd
import EventModel
import Findings
import Foundation
import Ingest
import Logging
import Synchronization
import Triage

#if canImport(Glibc)
    import Glibc
#endif

/// `logtriage run`: follows the configured sources, detects, writes findings, and commits each
/// source's position only after the findings it produced are durable in the durable outputs.
///
/// Sources: the journal, log files and syslog listeners. Outputs: stdout, files, a unix socket
/// and RFC 5424 over TCP. Triage: built-in or a worker.
package final class LiveRunner {
    package let configuration: DaemonConfiguration
    /// The file the configuration came from, read again on SIGHUP; nil for the embedded defaults.
    package var configurationPath: String?
    private let log: Logger
    /// How long the loop sleeps when no source had new lines.
    package var idleInterval: Duration = .milliseconds(100)
    /// Longest time findings wait for a flush while a backlog is read, and shortest time between
    /// checkpoint saves.
    package var commitInterval: Duration = .seconds(1)
    /// Longest time between saves of the correlation windows.
    package var snapshotInterval: Duration = .seconds(30)
    /// How long a stop waits for worker answers still in flight.
    package var shutdownGrace: Double = 5

    package init(configuration: DaemonConfiguration, logger: Logger) {
        self.configuration = configuration
        self.log = logger
    }

    package struct Refusal: Error, CustomStringConvertible {
        package var description: String
    }

    /// What this version cannot serve yet, each as a sentence; empty when it can run.
    package static func unsupported(_ c: DaemonConfiguration) -> [String] {
        var out: [String] = []
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
        guard c.journal != nil || !c.files.isEmpty || !c.syslog.isEmpty else {
            throw Refusal(description: "no sources: configure sources.journal, sources.files or sources.syslog")
        }

        let scan = Self.scanConfiguration(c)
        var pipeline = try ScanPipeline(configuration: scan)
        for e in pipeline.loadReport.errors { log.error("\(e)") }
        guard pipeline.loadReport.loaded > 0 else { throw Refusal(description: "no rules loaded") }

        let store = CheckpointStore(directory: c.stateDirectory)
        var (saved, warning) = try store.load()
        if let warning { log.warning("\(warning)") }
        var detector = Detector(rules: pipeline.rules, configuration: scan, live: true)
        // Audit records of this host may name parents no exec record explained: /proc knows them.
        let localRecords = c.journal.map { $0.directory == nil && $0.files.isEmpty } ?? true
        detector.audit.liveProcesses = localRecords
        if let state = saved.correlationState {
            do {
                try detector.restore(Array(state))
            } catch {
                log.warning("detection state in \(store.path) not restored (\(error)); correlation windows start empty")
            }
        }
        let outputs = try Outputs(c.outputs)
        var journal = try openJournal(
            c, rules: pipeline, cursor: saved.journalCursor, inclusive: saved.journalCursorInclusive == true)
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
                log.warning("worker \(client.configuration.baseURL): \(problem); findings keep built-in triage while it is away")
            }
            let encoder = FindingEncoder(format: c.format, productVersion: ScanPipeline.version)
            let t = WorkerTriager(client: client, model: found.model, provider: found.provider, hold: false) { f in
                outputs.write(encoder.encode(f), severity: f.severity.rawValue)
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
        for a in listeners.addresses { log.info("listening on \(a)") }
        var network = LineDecoder(format: .syslog, now: Self.now())
        var received = 0
        // Network messages have no durable position: their sequence number within this run, with
        // the run's start in the cursor, keeps finding uids distinct across restarts.
        let run = "run-\(Self.now())"

        Signals.install()
        Notify.send(
            "READY=1\nSTATUS=following \(journal == nil ? "" : "the journal, ")\(tails.count) files, \(listeners.addresses.count) syslog listeners"
        )
        var statistics = ReadStatistics()
        var findings = 0
        var lastStatus = ContinuousClock.now
        var lastYearCheck = ContinuousClock.now
        var lastCommit = ContinuousClock.now
        var lastSnapshot = ContinuousClock.now
        var lastPing = ContinuousClock.now - .seconds(3600)
        var uncommitted = false
        var unsaved = false
        var lastFlush = ContinuousClock.now
        var lag = 0.0
        var queued = 0
        let clock = ContinuousClock()

        func write(_ f: Finding) {
            outputs.write(pipeline.encode(f), severity: f.severity.rawValue)
            findings += 1
            triager?.submit(f)
        }

        /// One syslog message through the detector, counted as a line.
        var batch: [IngressQueue.Message] = []
        func detectMessage(_ m: IngressQueue.Message, now: Int64) {
            received += 1
            statistics.lines += 1
            if m.truncated { statistics.truncated += 1 }
            let position = SourcePosition(source: listeners.addresses[m.listener], line: received, offset: UInt64(received), cursor: run)
            let (event, parsed) = m.bytes.withUnsafeBufferPointer { network.decode($0, position: position) }
            if !parsed { statistics.unparsable += 1 }
            guard var event else { return }
            statistics.events += 1
            detector.process(&event, now: now, deliver: write)
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
            if let journal, let cursor = journal.cursor {
                // A failure a session still holds is read again after a restart: resume at it.
                if let p = held[journal.sourceName], let heldCursor = p.cursor {
                    saved.journalCursor = heldCursor
                    saved.journalCursorInclusive = true
                } else {
                    saved.journalCursor = cursor
                    saved.journalCursorInclusive = nil
                }
            }
            // The detection state (correlation windows, open aggregation groups) is the costly part
            // of a checkpoint. With files and the journal it is saved with every commit, so that
            // positions and state always match; with network sources only (nothing to replay) at
            // most every snapshotInterval and at stop.
            guard final || !tails.isEmpty || journal != nil || clock.now - lastSnapshot >= snapshotInterval else { return }
            // Streamed to the file, not built in memory first: a large state costs no second copy.
            saved.correlationState = nil
            try store.save(saved) { detector.write(into: &$0) }
            lastSnapshot = clock.now
            Self.releaseFreedMemory()
        }

        if let journal, case .gap(let cursor, let reason) = journal.resume {
            log.warning("journal: \(reason); entries may be lost", metadata: ["journal.cursor": "\(cursor)"])
            detector.notice(
                Self.gapFinding(cursor: cursor, reason: reason, source: journal.sourceName, hostname: ProcessInfo.processInfo.hostName),
                deliver: write)
            uncommitted = true
        }
        /// SIGHUP: output files are reopened (logrotate), and the configuration file and rules are
        /// read again. A reload whose configuration has a problem, whose rules have a problem the
        /// running ones did not, or that loads no rule, keeps the running rules and says why.
        /// Rules, pipelines and the aggregation window change in place; other keys take effect at
        /// the next start.
        func reload() throws {
            Notify.send("RELOADING=1\nMONOTONIC_USEC=\(Self.monotonicMicroseconds())\nSTATUS=reloading")
            defer { Notify.send("READY=1\nSTATUS=\(statistics.lines) lines, \(findings) findings") }
            outputs.reopen(log)
            var next = configuration
            if let path = configurationPath {
                let (parsed, problems) = DaemonConfiguration.load(path: path)
                for p in problems { log.error("reload: \(p)") }
                guard let parsed, problems.isEmpty else {
                    log.error("reload refused: \(path) has problems; the running configuration and rules stay")
                    return
                }
                next = parsed
            }
            let nextScan = Self.scanConfiguration(next)
            let candidate: ScanPipeline
            do {
                candidate = try ScanPipeline(configuration: nextScan)
            } catch {
                log.error("reload refused: \(error); the running rules stay")
                return
            }
            // Problems the running rules already had (a SigmaHQ rule this version cannot run) do
            // not block a reload; a new one does.
            let known = Set(pipeline.loadReport.errors.map { "\($0)" })
            let new = candidate.loadReport.errors.map { "\($0)" }.filter { !known.contains($0) }
            for e in new { log.error("reload: \(e)") }
            guard new.isEmpty, candidate.loadReport.loaded > 0 else {
                log.error(
                    "reload refused: \(new.count) new rule problems, \(candidate.loadReport.loaded) rules loaded; the running \(pipeline.loadReport.loaded) rules stay"
                )
                return
            }
            let later = Self.restartOnlyKeys(configuration, next)
            if !later.isEmpty { log.notice("reload: \(later.joined(separator: ", ")) take effect at the next start") }
            // Held session failures and open aggregation groups are reported under the old rules;
            // correlation windows carry over where the new rules still have the correlation.
            detector.settle(now: Self.now(), deliver: write)
            var fresh = Detector(rules: candidate.rules, configuration: nextScan, live: true)
            // The audit assembler holds no rule state: its programs seen (parents) and counts carry over.
            fresh.audit = detector.audit
            do {
                try fresh.restore(detector.snapshot(), aggregation: false)
            } catch {
                log.warning("reload: correlation windows start empty (\(error))")
            }
            detector = fresh
            pipeline = candidate
            // The rules' logsources are the journal's matches: reopen where reading stands.
            if let current = journal, next.journal == configuration.journal, next.journal?.matchRules == true, let cursor = current.cursor,
                let reopened = try? openJournal(next, rules: candidate, cursor: cursor, inclusive: false)
            {
                journal = reopened
            }
            try commit()
            log.notice("reload: \(candidate.loadReport.loaded) rules loaded")
        }

        while !Signals.stopRequested {
            if Signals.takeReload() { try reload() }
            let now = Self.now()
            if clock.now - lastYearCheck > .seconds(60) {
                for i in decoders.indices { decoders[i].setNow(now) }
                network.setNow(now)
                lastYearCheck = clock.now
            }
            var lines = 0
            var lastEventTime: Int64?
            queued = ingress.depth
            if let journal {
                journal.refresh()
                do {
                    lines += try journal.poll(maxEntries: 20_000) { event in
                        statistics.lines += 1
                        lastEventTime = event.time
                        statistics.events += 1
                        detector.process(&event, now: now, deliver: write)
                    }
                } catch {
                    log.error("\(journal.sourceName): \(error)")
                }
            }
            for i in tails.indices {
                do {
                    lines += try tails[i].poll(maxLines: 20_000) { line, position, cut in
                        statistics.lines += 1
                        if cut { statistics.truncated += 1 }
                        let (event, parsed) = decoders[i].decode(line, position: position)
                        if !parsed { statistics.unparsable += 1 }
                        guard var event else { return }
                        statistics.events += 1
                        lastEventTime = event.time
                        detector.process(&event, now: now, deliver: write)
                    }
                } catch {
                    log.error("\(tails[i].path): \(error)")
                }
            }
            ingress.drain(into: &batch)
            for m in batch { detectMessage(m, now: now) }
            lines += batch.count
            detector.advance(to: now, deliver: write)
            outputs.pump()
            // How far behind the newest event read is (journal and file events carry their time).
            lag = lines > 0 ? lastEventTime.map { Double(max(0, now - $0)) / 1e6 } ?? lag : 0
            // Triage updates arrive between lines: buffered outputs must reach disk then too.
            if lines > 0 || outputs.pending { uncommitted = true }
            // Findings reach the outputs when caught up, and at least every commitInterval while
            // catching up. The checkpoint (positions and detection state, rewritten and fsynced)
            // follows at most every commitInterval: a crash replays at most that much.
            if uncommitted, lines == 0 || clock.now - lastFlush >= commitInterval {
                try outputs.makeDurable()
                uncommitted = false
                unsaved = true
                lastFlush = clock.now
            }
            if unsaved, clock.now - lastCommit >= commitInterval {
                try commit()
                unsaved = false
                lastCommit = clock.now
            }
            // The ping comes from the loop itself: a stuck pipeline stops it and systemd restarts us.
            if let interval = Notify.watchdogInterval, clock.now - lastPing >= interval / 2 {
                Notify.send("WATCHDOG=1")
                lastPing = clock.now
            }
            if clock.now - lastStatus > .seconds(5) {
                let network = outputs.networkStatus
                Notify.send(
                    "STATUS=\(statistics.lines) lines, \(findings) findings; lag \(String(format: "%.1f", lag)) s, \(queued) syslog messages queued, \(ingress.counters.dropped) dropped\(triager.map { "; triage queue \($0.statistics.waiting)" } ?? "")\(network.isEmpty ? "" : "; " + network)"
                )
                lastStatus = clock.now
            }
            if lines == 0 { idle(journal: journal, ingress: ingress) }
        }
        Notify.send("STOPPING=1")
        // Sources stop first: no new connections or datagrams; what already arrived is detected.
        listeners.stop()
        ingress.drain(into: &batch)
        for m in batch { detectMessage(m, now: Self.now()) }
        detector.finish(now: Self.now(), deliver: write)
        try commit(final: true)
        if let triager, let consumers {
            // Bounded drain: answers that arrive within the grace period are written; findings
            // still waiting keep the built-in triage they were written with.
            triager.finish()
            let done: Void? = Self.wait(timeout: shutdownGrace) { await consumers.value }
            if done == nil {
                log.warning(
                    "stopping without waiting for \(triager.statistics.waiting) worker answers"
                )
            }
            try outputs.makeDurable()
            log.info("\(triager.statistics.line)")
        }
        let net = ingress.counters
        if let journal {
            log.info(
                "journal: \(journal.entries) entries, \(journal.retriedEntries) read again for a MESSAGE missing at first, \(journal.entriesWithoutMessage) without MESSAGE"
            )
        }
        if detector.audit.statistics.records > 0 { log.info("\(detector.audit.statistics.line)") }
        for t in tails where t.statistics.rotations + t.statistics.truncations > 0 {
            log.info("\(t.path): \(t.statistics.rotations) rotations, \(t.statistics.truncations) truncations (copytruncate)")
        }
        if !outputs.networkStatus.isEmpty { log.info("outputs: \(outputs.networkStatus)") }
        log.info(
            "stopped: \(statistics.lines) lines, \(statistics.events) events, \(statistics.unparsable) unparsable, \(statistics.truncated) truncated; \(findings) findings; syslog: \(net.received) received, \(net.dropped) dropped (queue full), \(net.refusedConnections) connections refused"
        )
        return 0
    }

    /// Sleeps until a syslog message or a journal change arrives, or `idleInterval` passes (files
    /// are polled at that interval).
    private func idle(journal: JournalReader?, ingress: IngressQueue) {
        var fds = [pollfd(fd: ingress.wakeDescriptor, events: Int16(POLLIN), revents: 0)]
        var timeout = Int64(idleInterval.components.seconds) * 1000 + idleInterval.components.attoseconds / 1_000_000_000_000_000
        if let j = journal?.pollDescriptor {
            fds.append(pollfd(fd: j.fd, events: j.events, revents: 0))
            // sd-journal asks for an earlier wake-up when it has to check files by hand.
            if j.timeoutMicroseconds != .max {
                let nowMicro = Self.monotonicMicroseconds()
                let wanted = j.timeoutMicroseconds > nowMicro ? Int64((j.timeoutMicroseconds - nowMicro) / 1000) : 0
                timeout = min(timeout, wanted)
            }
        }
        _ = poll(&fds, nfds_t(fds.count), Int32(clamping: max(0, timeout)))
        if fds[0].revents != 0 { ingress.clearWake() }
    }

    static func scanConfiguration(_ c: DaemonConfiguration) -> ScanConfiguration {
        var scan = ScanConfiguration()
        scan.rulePaths = c.rules
        scan.pipelineDirectory = c.pipelines
        scan.format = c.format
        scan.triage = c.triage
        scan.aggregateWindowSeconds = c.aggregateWindowSeconds
        return scan
    }

    /// Keys whose change a reload does not apply (sources, outputs, state, triage, format).
    static func restartOnlyKeys(_ a: DaemonConfiguration, _ b: DaemonConfiguration) -> [String] {
        var keys: [String] = []
        if a.journal != b.journal || a.syslog != b.syslog || a.files != b.files { keys.append("sources") }
        if a.outputs != b.outputs { keys.append("output") }
        if a.format != b.format { keys.append("format") }
        if a.stateDirectory != b.stateDirectory { keys.append("state_directory") }
        if a.triage != b.triage || a.worker != b.worker { keys.append("triage") }
        return keys
    }

    /// Hands memory freed after a large snapshot back to the system (glibc keeps it otherwise).
    static func releaseFreedMemory() {
        _ = malloc_trim(0)
    }

    static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }

    /// Opens the journal source and positions it: after the committed cursor, else where the
    /// configuration says a first start begins. A journal that cannot be opened stops the daemon
    /// when it is the only source, and is reported and left out otherwise.
    private func openJournal(_ c: DaemonConfiguration, rules pipeline: ScanPipeline, cursor: String?, inclusive: Bool) throws
        -> JournalReader?
    {
        guard let j = c.journal else { return nil }
        let location: JournalReader.Location =
            if let d = j.directory { .directory(d) } else if !j.files.isEmpty { .files(j.files) } else if let n = j.namespace {
                .namespace(n)
            } else { .system }
        var matches: [JournalReader.Match] = []
        if j.matchRules {
            if let m = pipeline.rules.sourceMatches() {
                matches = m
            } else {
                log.info("journal: every entry is read (a loaded rule's logsource covers all events)")
            }
        }
        let reader: JournalReader
        do {
            reader = try JournalReader(location: location, matches: matches)
            try reader.seek(cursor: cursor, inclusive: inclusive, start: j.start)
        } catch {
            if c.files.isEmpty, c.syslog.isEmpty { throw Refusal(description: "\(error)") }
            log.warning("\(error); continuing without the journal")
            return nil
        }
        if !reader.hasFiles {
            log.warning(
                "journal (\(JournalReader.describe(location))): no readable journal files yet (journald not running, or this user cannot read them: add it to group systemd-journal); entries are read once files appear"
            )
        }
        return reader
    }

    /// The finding a resume raises when the committed journal entry is gone: entries between it
    /// and where reading continues may never have been seen.
    static let journalGapRule = RuleSummary.daemon(
        id: "7d0c3f5e-8a41-4c7e-9b0e-3f1b6a2d9c51", title: "Journal entries lost before logtriage read them",
        description:
            "logtriage resumed the journal after its committed entry, but that entry is no longer in the journal: files were rotated or vacuumed (or the journal replaced) while logtriage was stopped or behind. Entries in between were not inspected. A journal cleared on purpose hides activity (T1070.002).",
        level: .medium, tags: ["attack.defense-evasion", "attack.t1070.002"])

    static func gapFinding(cursor: String, reason: String, source: String, hostname: String?) -> Finding {
        var event = Event(time: now(), position: SourcePosition(source: source, line: 0, offset: 0, cursor: cursor))
        event.fields.add(FieldName.message, "journal resume: \(reason); committed cursor \(cursor)")
        event.fields.add(FieldName.identifier, "logtriage")
        if let hostname { event.fields.add(FieldName.hostname, hostname) }
        return Finding(notice: journalGapRule, event: event)
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
        private var sockets: [SocketSink] = []
        private var collectors: [SyslogSink] = []
        private var dirty = false
        var pending: Bool { lock.withLock { dirty } }

        init(_ outputs: [DaemonConfiguration.Output]) throws {
            for o in outputs {
                switch o {
                case .stdout:
                    Self.endLine(fd: 1, path: "/proc/self/fd/1")
                    stdout = SharedOutput(fd: 1)
                case .file(let path, let policy):
                    let fd = try Self.open(path)
                    files.append((path, policy, fd, SharedOutput(fd: fd)))
                case .socket(let path, let limits): sockets.append(try SocketSink(path: path, limits: limits))
                case .syslog(let host, let port, let limits): collectors.append(SyslogSink(host: host, port: port, limits: limits))
                }
            }
        }

        static func open(_ path: String) throws -> Int32 {
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
            guard fd >= 0 else { throw Refusal(description: "\(path): \(String(cString: strerror(errno)))") }
            endLine(fd: fd, path: path)
            return fd
        }

        /// A kill can cut the last line of a file output short (the kernel may end a large write
        /// early for a fatal signal). The finding it held is written again after the restart, but
        /// appended to the cut line it would be lost inside one invalid line: so when the file
        /// (`fd`, readable at `path`) does not end with a newline, one is written first, and the
        /// cut line stays a line of its own. Pipes and sockets are left alone.
        static func endLine(fd: Int32, path: String) {
            var st = stat()
            guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size > 0 else { return }
            // Only where the next write lands at the end (a file opened to append, or at its end).
            guard fcntl(fd, F_GETFL) & O_APPEND != 0 || lseek(fd, 0, SEEK_CUR) == st.st_size else { return }
            let reader = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            guard reader >= 0 else { return }
            defer { close(reader) }
            var last: UInt8 = 0
            guard pread(reader, &last, 1, st.st_size - 1) == 1, last != UInt8(ascii: "\n") else { return }
            var newline = UInt8(ascii: "\n")
            _ = Glibc.write(fd, &newline, 1)
        }

        /// One encoded finding (a JSON line) to every output; `severity` is its level (1–5) for syslog.
        func write(_ line: [UInt8], severity: Int) {
            lock.withLock {
                dirty = true
                stdout?.write(line)
                for f in files {
                    f.out.write(line)
                    // A failure is kept by the output and raised by the next makeDurable.
                    if f.fsync == .always { _ = f.out.sync() }
                }
                for s in sockets { s.write(line) }
                for c in collectors { c.write(c.frame(line, severity: severity, msgid: "finding")) }
            }
        }

        /// Network outputs: new consumers, reconnects, and sends that need no wait.
        func pump() {
            lock.withLock {
                for s in sockets { s.pump() }
                for c in collectors { c.pump() }
            }
        }

        /// Lines the network outputs shed because a consumer was too slow or away, and their state.
        var networkStatus: String {
            lock.withLock {
                var parts: [String] = []
                for s in sockets { parts.append("socket \(s.path): \(s.consumers) consumers, \(s.shed) lines shed") }
                for c in collectors {
                    parts.append(
                        "syslog \(c.host):\(c.port): \(c.connected ? "connected" : "disconnected\(c.lastError.map { " (\($0))" } ?? "")"), \(c.shed) lines shed"
                    )
                }
                return parts.joined(separator: "; ")
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
            // Network consumers get a bounded wait: a slow or absent one must not hold detection;
            // what it cannot take stays buffered up to its limit, beyond that it is shed and counted.
            for s in sockets { s.drain() }
            for c in collectors { c.drain() }
            dirty = false
        }

        /// After logrotate moved the findings file: write to a new file at the configured path.
        func reopen(_ log: Logger) {
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
                    log.error("\(error); still writing to the old file")
                }
            }
        }
    }
}

/// SIGTERM and SIGINT ask the loop to stop; SIGHUP asks it to reopen outputs and reload.
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
