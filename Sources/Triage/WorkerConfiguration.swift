import Foundation

/// How to reach and use the inference worker (any OpenAI-compatible chat completions server:
/// llama.cpp's llama-server, Ollama, vLLM).
package struct WorkerConfiguration: Sendable {
    /// Base URL of the OpenAI-compatible API, e.g. `http://127.0.0.1:8089/v1`.
    package var baseURL: String
    /// Model name to request; nil asks the worker's `/models` and uses the first one listed.
    package var model: String?
    /// Bearer token; see `loadAPIKey`.
    package var apiKey: String?
    /// Longest wait for one HTTP request, response body included.
    package var requestTimeout: Duration = .seconds(60)
    /// Requests in flight at once.
    package var concurrency = 2
    /// Findings per request.
    package var batchSize = 4
    /// Longest time a finding waits for its batch to fill before a smaller batch is sent.
    package var maxWait: Duration = .seconds(2)
    /// Estimated tokens (prompt and completion) sent per minute; nil means no limit.
    package var tokensPerMinute: Int?
    /// Findings waiting for the worker; beyond this the least severe are left with built-in triage.
    package var queueCapacity = 1000
    /// How long a finding may wait for model triage, from detection to answer.
    package var deadline: Duration = .seconds(120)
    /// Extra attempts after a failed request that may succeed when repeated (refused, 503, 5xx, timeout).
    package var retries = 2
    package var retryBackoff: Duration = .milliseconds(500)
    /// How far the model may move a finding's score from the built-in one, either way.
    package var band = 20
    /// Consecutive failed batches that open the circuit breaker, and how long it stays open at first.
    package var breakerThreshold = 3
    package var breakerCooldown: Duration = .seconds(30)
    /// Longest accepted response body.
    package var maxResponseBytes = 4 << 20
    /// Longest log text per evidence line in a prompt.
    package var maxFieldBytes = 300
    /// Evidence lines per finding in a prompt.
    package var evidencePerFinding = 3
    /// Upper bound on `max_tokens` per request.
    package var maxTokens = 4096

    package init(baseURL: String) {
        var url = baseURL
        while url.hasSuffix("/") { url.removeLast() }
        self.baseURL = url
    }

    /// The API key from `file`, else from the systemd credential `worker-api-key`
    /// (`$CREDENTIALS_DIRECTORY/worker-api-key`), else none. Surrounding whitespace is ignored.
    package static func loadAPIKey(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> String?
    {
        var path = file
        if path == nil, let dir = environment["CREDENTIALS_DIRECTORY"], FileManager.default.fileExists(atPath: dir + "/worker-api-key") {
            path = dir + "/worker-api-key"
        }
        guard let path else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(message: "\(path): cannot read the worker API key")
        }
        let key = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !key.isEmpty else { throw ConfigurationError(message: "\(path): the worker API key file is empty") }
        return key
    }

    package struct ConfigurationError: Error, CustomStringConvertible {
        package var message: String
        package var description: String { message }
    }
}
