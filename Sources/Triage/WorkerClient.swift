import AsyncHTTPClient
import Findings
import Foundation
import NIOCore
import NIOHTTP1

/// Talks to an OpenAI-compatible worker: `GET {base}/models` for health and the model name,
/// `POST {base}/chat/completions` for triage. Every call has a deadline that covers the whole
/// exchange, the response body included, and a cap on the body's size. Call `shutdown` when done.
package struct WorkerClient: Sendable {
    package let configuration: WorkerConfiguration
    private let http: HTTPClient

    package init(configuration: WorkerConfiguration) {
        self.configuration = configuration
        var c = HTTPClient.Configuration()
        // A refused connection fails at once; the triager's own retries and breaker decide what
        // happens next, instead of the pool retrying quietly until the request deadline.
        c.connectionPool.retryConnectionEstablishment = false
        c.timeout.connect = .seconds(5)
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: c)
    }

    package func shutdown() async {
        try? await http.shutdown()
    }

    /// A model the worker serves, and who serves it (`owned_by`, e.g. `llamacpp`).
    package struct Model: Sendable, Equatable {
        package var id: String
        package var ownedBy: String?
    }

    /// The models the worker lists; a failure means the worker is not usable now.
    package func models(timeout: Duration = .seconds(5)) async -> Result<[Model], WorkerFailure> {
        let result = await exchange(method: .GET, path: "/models", body: nil, timeout: timeout)
        switch result {
        case .failure(let f): return .failure(f)
        case .success(let body):
            guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
                let data = object["data"] as? [[String: Any]]
            else { return .failure(.invalidResponse("/models did not list models")) }
            return .success(
                data.compactMap { m in
                    (m["id"] as? String).map {
                        Model(
                            id: SafeText.clean($0, limit: 200),
                            ownedBy: (m["owned_by"] as? String).map { SafeText.clean($0, limit: 80) })
                    }
                })
        }
    }

    /// Sends one completion request and returns the message content.
    package func complete(_ prompt: WorkerPrompt, timeout: Duration) async -> Result<String, WorkerFailure> {
        switch await exchange(method: .POST, path: "/chat/completions", body: prompt.body, timeout: timeout) {
        case .failure(let f): .failure(f)
        case .success(let body): WorkerAnswer.content(of: body)
        }
    }

    private func exchange(method: HTTPMethod, path: String, body: [UInt8]?, timeout: Duration) async -> Result<[UInt8], WorkerFailure> {
        let limit = configuration.maxResponseBytes
        let configuration = configuration
        let client = http
        let nanos = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        // The race covers the response body too: a worker that sends headers and then never
        // finishes its body is cut off at the same deadline.
        return await withTaskGroup(of: Result<[UInt8], WorkerFailure>?.self) { group in
            group.addTask {
                var request = HTTPClientRequest(url: configuration.baseURL + path)
                request.method = method
                request.headers.add(name: "Accept", value: "application/json")
                request.headers.add(name: "User-Agent", value: "logtriage")
                if let key = configuration.apiKey { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
                if let body {
                    request.headers.add(name: "Content-Type", value: "application/json")
                    request.body = .bytes(ByteBuffer(bytes: body))
                }
                do {
                    let response = try await client.execute(request, timeout: .nanoseconds(nanos))
                    let status = Int(response.status.code)
                    let buffer: ByteBuffer
                    do {
                        buffer = try await response.body.collect(upTo: limit)
                    } catch is NIOTooManyBytesError {
                        return .failure(.bodyTooLarge)
                    }
                    let bytes = Array(buffer.readableBytesView)
                    guard (200..<300).contains(status) else { return .failure(Self.classify(status: status, body: bytes)) }
                    return .success(bytes)
                } catch let error as HTTPClientError {
                    if error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout || error == .cancelled {
                        return Task.isCancelled ? nil : .failure(.timeout)
                    }
                    return .failure(.unreachable(String(describing: error)))
                } catch {
                    return Task.isCancelled ? nil : .failure(.unreachable(Self.describe(error)))
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return Task.isCancelled ? nil : .failure(.timeout)
            }
            var outcome: Result<[UInt8], WorkerFailure> = .failure(.timeout)
            for await result in group {
                if let result {
                    outcome = result
                    break
                }
            }
            group.cancelAll()
            return outcome
        }
    }

    private static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("refused") || text.contains("ECONNREFUSED") { return "connection refused" }
        return SafeText.clean(text, limit: 200)
    }

    /// Maps an HTTP error status and body to a failure; llama-server's, vLLM's and Ollama's
    /// OpenAI-shaped error objects give the reason.
    package static func classify(status: Int, body: [UInt8]) -> WorkerFailure {
        var message = ""
        var type = ""
        if let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] {
            let error = object["error"] as? [String: Any]
            message = (error?["message"] as? String) ?? (object["error"] as? String) ?? (object["message"] as? String) ?? ""
            type = (error?["type"] as? String) ?? ((error?["code"] as? String) ?? "")
        }
        message = SafeText.clean(message, limit: 200)
        if status == 503 { return .loading }
        let lowered = (message + " " + type).lowercased()
        if status == 400 || status == 413,
            lowered.contains("context") || lowered.contains("too long") || lowered.contains("maximum") || lowered.contains("exceed")
        {
            return .contextExceeded(message)
        }
        return .http(status, message)
    }
}
