import Findings
import Synchronization

/// Sends findings in batches to the inference worker and delivers each finding once more with
/// the model's triage, or with its built-in triage and the reason the model's is missing.
///
/// Detection never waits: `submit` queues and returns. Consumers (`concurrency` of them) take
/// the most severe findings first, in batches by count and time, under a token budget, with
/// retries for transient failures, smaller batches when a prompt or answer is too long, and a
/// circuit breaker that stops calling a worker that keeps failing. Every finding submitted is
/// delivered exactly once by the triager, by its deadline.
package final class WorkerTriager: Sendable {
    /// Counts reported in the summary.
    package struct Statistics: Sendable, Equatable {
        package var submitted = 0
        package var modelTriaged = 0
        package var keptBuiltin = 0
        /// Scores the model proposed outside the band or below the floor, held within them.
        package var scoresBounded = 0
        package var requests = 0
        package var retries = 0
        package var splits = 0
        package var unknownIDs = 0
        /// Why findings kept built-in triage, with counts.
        package var reasons: [String: Int] = [:]

        /// Findings submitted that have no answer yet, from the model or built-in.
        package var waiting: Int { submitted - modelTriaged - keptBuiltin }

        package var line: String {
            var s = "triage: \(submitted) findings to the worker, \(modelTriaged) triaged by the model, \(keptBuiltin) kept built-in triage"
            s += "; \(requests) requests, \(retries) retries, \(splits) batch splits"
            if scoresBounded > 0 { s += ", \(scoresBounded) model scores held within bounds" }
            if unknownIDs > 0 { s += ", \(unknownIDs) unknown ids ignored" }
            if !reasons.isEmpty {
                s += " (" + reasons.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + ")"
            }
            return s
        }
    }

    private struct Breaker {
        var consecutive = 0
        var openUntil: ContinuousClock.Instant?
        var cooldown: Duration
        var reason = ""
    }

    private struct Bucket {
        var tokens: Double
        var last: ContinuousClock.Instant
    }

    package let client: WorkerClient
    package let model: String
    package let provider: String?
    /// Whether the first write of each finding waits for this triage (then it is `activity_id` 1).
    package let hold: Bool
    private let queue: TriageQueue
    private let deliver: @Sendable (Finding) -> Void
    private let stats = Mutex(Statistics())
    private let breaker: Mutex<Breaker>
    private let bucket: Mutex<Bucket>
    private let clock = ContinuousClock()

    package init(client: WorkerClient, model: String, provider: String?, hold: Bool, deliver: @escaping @Sendable (Finding) -> Void) {
        self.client = client
        self.model = model
        self.provider = provider
        self.hold = hold
        self.deliver = deliver
        let c = client.configuration
        queue = TriageQueue(capacity: c.queueCapacity)
        breaker = Mutex(Breaker(cooldown: c.breakerCooldown))
        bucket = Mutex(Bucket(tokens: Double(c.tokensPerMinute ?? 0), last: ContinuousClock.now))
    }

    /// Asks the worker which model it serves. With `configuration.model` set that name is used;
    /// otherwise the first model listed. A worker that does not answer is reported, not fatal:
    /// the breaker and fallbacks handle it while it is away.
    package static func discover(_ client: WorkerClient) async -> (model: String, provider: String?, problem: WorkerFailure?) {
        switch await client.models() {
        case .success(let models):
            let chosen = client.configuration.model.flatMap { name in models.first { $0.id == name } } ?? models.first
            return (client.configuration.model ?? chosen?.id ?? "default", chosen?.ownedBy, nil)
        case .failure(let f):
            return (client.configuration.model ?? "default", nil, f)
        }
    }

    package var statistics: Statistics { stats.withLock { $0 } }

    /// Queues a finding for model triage; never blocks.
    package func submit(_ finding: Finding) {
        stats.withLock { $0.submitted += 1 }
        if let shed = queue.offer(finding, now: clock.now, deadline: client.configuration.deadline) {
            fallback([shed], category: "queue full", reason: "the worker queue was full of more severe findings")
        }
    }

    /// No more findings will come; `run` returns once the queue is empty.
    package func finish() { queue.finish() }

    /// Runs the consumers until `finish` was called and every finding was delivered.
    package func run() async {
        let c = client.configuration
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<max(1, c.concurrency) {
                group.addTask { await self.consume() }
            }
        }
    }

    private func consume() async {
        let c = client.configuration
        // Never zero: with max_wait 0 an idle consumer would spin.
        let tick = max(.milliseconds(1), min(c.maxWait / 4, .milliseconds(50)))
        while true {
            let t = queue.take(batchSize: max(1, c.batchSize), maxWait: c.maxWait, now: clock.now)
            if !t.expired.isEmpty {
                fallback(t.expired.map(\.finding), category: "deadline", reason: "the worker did not answer before the triage deadline")
            }
            if t.done { return }
            if t.batch.isEmpty {
                try? await clock.sleep(for: tick)
                continue
            }
            await process(t.batch)
            queue.settled()
        }
    }

    private func process(_ entries: [TriageQueue.Entry]) async {
        let c = client.configuration
        let findings = entries.map(\.finding)
        let deadline = entries.map(\.deadline).min()!
        if let reason = openBreaker() {
            fallback(findings, category: "circuit open", reason: WorkerFailure.circuitOpen(reason).description)
            return
        }
        let prompt = WorkerPrompt(findings: findings, model: model, configuration: c)
        guard await acquireTokens(prompt.estimatedTokens, before: deadline) else {
            fallback(findings, category: "token budget", reason: "the tokens-per-minute budget left no room before the deadline")
            return
        }
        var attempt = 0
        while true {
            let remaining = deadline - clock.now
            guard remaining > .zero else {
                fallback(findings, category: "deadline", reason: "the worker did not answer before the triage deadline")
                return
            }
            stats.withLock { $0.requests += 1 }
            switch await client.complete(prompt, timeout: min(c.requestTimeout, remaining)) {
            case .success(let content):
                let (entriesByID, unknown) = WorkerAnswer.assessments(content: content, ids: prompt.ids)
                let allInvalid = entriesByID.values.allSatisfy { if case .failure = $0 { true } else { false } }
                if allInvalid { recordFailure("every entry of the answer was invalid") } else { recordSuccess() }
                stats.withLock { $0.unknownIDs += unknown }
                for (id, f) in zip(prompt.ids, findings) {
                    switch entriesByID[id] ?? .failure(.invalidResponse("no entry for this finding")) {
                    case .success(let a): accept(a, f)
                    case .failure(let failure): fallback([f], category: "invalid answer", reason: failure.description)
                    }
                }
                return
            case .failure(let failure):
                if failure.shrinks, findings.count > 1 {
                    stats.withLock { $0.splits += 1 }
                    let half = entries.count / 2
                    await process(Array(entries[..<half]))
                    await process(Array(entries[half...]))
                    return
                }
                if failure.isTransient, attempt < c.retries {
                    attempt += 1
                    stats.withLock { $0.retries += 1 }
                    let backoff = c.retryBackoff * (1 << (attempt - 1))
                    if deadline - clock.now > backoff {
                        try? await clock.sleep(for: backoff)
                        continue
                    }
                }
                recordFailure(failure.description)
                fallback(findings, category: Self.category(failure), reason: failure.description)
                return
            }
        }
    }

    private func accept(_ a: Assessment, _ original: Finding) {
        var f = original
        WorkerAnswer.apply(a, to: &f, band: client.configuration.band, model: model, provider: provider)
        if hold { f.activity = .create }
        stats.withLock {
            $0.modelTriaged += 1
            if f.triage.riskScore != a.riskScore { $0.scoresBounded += 1 }
        }
        deliver(f)
    }

    private func fallback(_ findings: [Finding], category: String, reason: String) {
        stats.withLock {
            $0.keptBuiltin += findings.count
            $0.reasons[category, default: 0] += findings.count
        }
        for var f in findings {
            WorkerAnswer.keepBuiltin(&f, because: reason)
            if hold { f.activity = .create }
            deliver(f)
        }
    }

    private static func category(_ f: WorkerFailure) -> String {
        switch f {
        case .unreachable: "unreachable"
        case .loading: "loading"
        case .contextExceeded: "context exceeded"
        case .http(let status, _): "HTTP \(status)"
        case .timeout: "timeout"
        case .truncated: "truncated"
        case .invalidResponse: "invalid answer"
        case .bodyTooLarge: "answer too large"
        case .circuitOpen: "circuit open"
        }
    }

    /// The reason the breaker is open, or nil when requests may go (closed, or half-open after the cooldown).
    private func openBreaker() -> String? {
        let now = clock.now
        return breaker.withLock { b in
            guard let until = b.openUntil, now < until else { return nil }
            return "\(b.consecutive) failures in a row, last: \(b.reason)"
        }
    }

    private func recordSuccess() {
        let initial = client.configuration.breakerCooldown
        breaker.withLock { b in
            b.consecutive = 0
            b.openUntil = nil
            b.cooldown = initial
        }
    }

    private func recordFailure(_ reason: String) {
        let c = client.configuration
        let now = clock.now
        breaker.withLock { b in
            b.consecutive += 1
            b.reason = reason
            guard b.consecutive >= c.breakerThreshold else { return }
            if let until = b.openUntil, now >= until {
                // A failed probe after the cooldown: stay away twice as long, up to five minutes.
                b.cooldown = min(b.cooldown * 2, .seconds(300))
            }
            b.openUntil = now + b.cooldown
        }
    }

    /// Waits until the token budget covers `tokens`; false if that would pass `deadline`.
    private func acquireTokens(_ tokens: Int, before deadline: ContinuousClock.Instant) async -> Bool {
        guard let perMinute = client.configuration.tokensPerMinute, perMinute > 0 else { return true }
        let need = Double(min(tokens, perMinute))
        let rate = Double(perMinute) / 60
        while true {
            let now = clock.now
            let wait: Double = bucket.withLock { b in
                let elapsed = now - b.last
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                b.tokens = min(Double(perMinute), b.tokens + seconds * rate)
                b.last = now
                if b.tokens >= need {
                    b.tokens -= need
                    return 0
                }
                return (need - b.tokens) / rate
            }
            if wait == 0 { return true }
            let pause = Duration.milliseconds(Int(wait * 1000) + 1)
            guard clock.now + pause < deadline else { return false }
            try? await clock.sleep(for: pause)
        }
    }
}
