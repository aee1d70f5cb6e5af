import Findings
import Foundation
import Synchronization
import Triage

/// `logtriage bench triage`: the built-in triager's cost per finding, and with a worker the
/// findings it triages per minute at several batch sizes and how its queue handles a burst.
package enum TriageBenchmark {
    /// Findings from a generated mix of auth-log lines: guessing from many sources, successes
    /// after guessing, sudo and account changes. Untriaged, as detection hands them over.
    package static func findings(count: Int) throws -> [Finding] {
        var lines: [String] = []
        var n = 0
        var second = 0
        func stamp() -> String {
            second += 1
            return String(format: "Mar 10 %02d:%02d:%02d", (second / 3600) % 24, (second / 60) % 60, second % 60)
        }
        while lines.count < count * 3 {
            n += 1
            let ip = "198.51.\(n / 250 % 250).\(n % 250 + 1)"
            let host = "web\(n % 7)"
            switch n % 6 {
            case 0: lines.append("\(stamp()) \(host) sshd[\(1000 + n)]: Failed password for root from \(ip) port 22 ssh2")
            case 1: lines.append("\(stamp()) \(host) sshd[\(1000 + n)]: Invalid user user\(n) from \(ip) port 22")
            case 2:
                lines.append(
                    "\(stamp()) \(host) sudo:    user\(n) : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/u ; USER=root ; COMMAND=/bin/bash")
            case 3:
                lines.append(
                    "\(stamp()) \(host) useradd[\(1000 + n)]: new user: name=svc\(n), UID=\(2000 + n), GID=\(2000 + n), home=/home/svc, shell=/bin/bash"
                )
            case 4: lines.append("\(stamp()) \(host) sshd[\(1000 + n)]: Failed password for invalid user admin from \(ip) port 22 ssh2")
            default: lines.append("\(stamp()) \(host) su[\(1000 + n)]: FAILED SU (to root) user\(n) on pts/1")
            }
        }
        var config = ScanConfiguration()
        config.triage = .none
        config.reader.year = 2024
        config.aggregateWindowSeconds = 0
        let out = try ScanPipeline(configuration: config).findings(of: lines)
        return Array(out.prefix(count))
    }

    /// Nanoseconds per `BuiltinTriager.triage` call over `rounds` passes of `findings`.
    package static func builtin(_ findings: [Finding], rounds: Int) -> (perFinding: Double, calls: Int) {
        var triager = BuiltinTriager()
        var checksum = 0
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            for _ in 0..<rounds {
                for var f in findings {
                    triager.triage(&f)
                    checksum &+= f.triage.riskScore
                }
            }
        }
        let calls = rounds * findings.count
        precondition(checksum != 0)
        let nanos = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        return (nanos / Double(calls), calls)
    }

    package struct WorkerRun: Sendable {
        package var findings: Int
        package var seconds: Double
        package var statistics: WorkerTriager.Statistics
        /// Built-in scores of the findings the model triaged, in the order its answers arrived.
        package var modelScores: [Int]
        /// Built-in scores of the findings that kept built-in triage.
        package var builtinScores: [Int]
    }

    /// Triages `findings` through the worker and waits for all of them. With `burst` every
    /// finding is queued before the consumers start, as when detection outruns the worker.
    package static func worker(_ findings: [Finding], configuration: WorkerConfiguration, burst: Bool) async -> WorkerRun {
        let client = WorkerClient(configuration: configuration)
        let (model, provider, _) = await WorkerTriager.discover(client)
        let answers = Answers()
        let triager = WorkerTriager(client: client, model: model, provider: provider, hold: true) { f in
            answers.append(f.uid, byModel: f.triage.source == "worker")
        }
        var prepared = findings
        var builtin = BuiltinTriager()
        for i in prepared.indices { builtin.triage(&prepared[i]) }
        let scoreByUID = Dictionary(prepared.map { ($0.uid, $0.triage.riskScore) }, uniquingKeysWith: { a, _ in a })
        let clock = ContinuousClock()
        let start = clock.now
        if burst {
            for f in prepared { triager.submit(f) }
            triager.finish()
            await triager.run()
        } else {
            async let consumers: Void = triager.run()
            for f in prepared { triager.submit(f) }
            triager.finish()
            await consumers
        }
        let elapsed = clock.now - start
        await client.shutdown()
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let delivered = answers.all
        return WorkerRun(
            findings: findings.count, seconds: seconds, statistics: triager.statistics,
            modelScores: delivered.filter(\.byModel).compactMap { scoreByUID[$0.uid] },
            builtinScores: delivered.filter { !$0.byModel }.compactMap { scoreByUID[$0.uid] })
    }

    private final class Answers: Sendable {
        private let state = Mutex<[(uid: String, byModel: Bool)]>([])

        func append(_ uid: String, byModel: Bool) { state.withLock { $0.append((uid, byModel)) } }
        var all: [(uid: String, byModel: Bool)] { state.withLock { $0 } }
    }
}
