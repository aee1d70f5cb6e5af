import Findings
import Foundation
import Triage

/// `scan --triage worker`: the scan runs on its own thread at full speed while the worker
/// triager's consumers send batches; detection never waits for the model.
package enum TriagedScan {
    package struct Outcome: Sendable {
        package var summary: ScanSummary
        package var triage: WorkerTriager.Statistics
        package var model: String
    }

    package static func run(
        pipeline: ScanPipeline, inputs: [String], worker: WorkerConfiguration, output: SharedOutput,
        diagnostic: @escaping @Sendable (String) -> Void
    ) async -> Outcome {
        let client = WorkerClient(configuration: worker)
        let (model, provider, problem) = await WorkerTriager.discover(client)
        if let problem {
            diagnostic("worker \(worker.baseURL): \(problem); findings keep built-in triage while it is away")
        }
        let encoder = FindingEncoder(format: pipeline.configuration.format, productVersion: ScanPipeline.version)
        let hold = pipeline.configuration.holdForWorker
        let triager = WorkerTriager(client: client, model: model, provider: provider, hold: hold) { f in
            output.write(encoder.encode(f))
        }
        async let consumers: Void = triager.run()
        let scan = UncheckedScan(pipeline: pipeline)
        let summary = await withCheckedContinuation { (done: CheckedContinuation<ScanSummary, Never>) in
            let thread = Thread {
                let summary = scan.pipeline.run(
                    inputs: inputs,
                    emit: { f, bytes in
                        if !hold { output.write(bytes) }
                        triager.submit(f)
                    }, diagnostic: diagnostic)
                done.resume(returning: summary)
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        triager.finish()
        await consumers
        await client.shutdown()
        return Outcome(summary: summary, triage: triager.statistics, model: model)
    }

    /// The pipeline handed to the scan thread, which is its only user from then on.
    private struct UncheckedScan: @unchecked Sendable {
        let pipeline: ScanPipeline
    }
}
