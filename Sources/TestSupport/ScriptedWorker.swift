import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A real HTTP server on 127.0.0.1 that answers like an OpenAI-compatible worker, or fails like
/// one: error statuses, bodies that never end, no answer at all, dropped connections.
package final class ScriptedWorker: Sendable {
    package enum Reply: Sendable {
        case json(status: Int, body: String)
        /// Accepts the request and never answers.
        case silence
        /// Sends headers and then body chunks forever.
        case endlessBody
        /// Closes the connection without answering.
        case close
        indirect case delayed(milliseconds: Int, Reply)
    }

    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let counter: Counter
    package let port: Int

    package var baseURL: String { "http://127.0.0.1:\(port)/v1" }
    /// Chat completion requests received.
    package var requests: Int { counter.value.withLock { $0 } }

    /// Starts the server; `reply` gets each chat completion request's body and its index (from 0).
    /// `GET /v1/models` lists one model, `scripted`.
    package init(reply: @escaping @Sendable (_ body: String, _ index: Int) -> Reply) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let counter = Counter()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Handler(reply: reply, counter: counter))
                }
            }
        channel = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress?.port ?? 0
        self.group = group
        self.counter = counter
    }

    package func shutdown() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }

    /// An OpenAI-shaped chat completion whose message content is `content`.
    package static func completion(_ content: String, finish: String = "stop") -> String {
        var escaped = ""
        for s in content.unicodeScalars {
            switch s {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            default:
                if s.value < 0x20 { escaped += "\\u" + String(format4(s.value)) } else { escaped.unicodeScalars.append(s) }
            }
        }
        return """
            {"id":"chatcmpl-1","object":"chat.completion","model":"scripted","choices":[{"index":0,\
            "message":{"role":"assistant","content":"\(escaped)"},"finish_reason":"\(finish)"}],\
            "usage":{"prompt_tokens":10,"completion_tokens":10,"total_tokens":20}}
            """
    }

    /// A valid answer for every id the request asks about, built by `entry`.
    package static func answer(_ body: String, entry: (String) -> String) -> Reply {
        let content = "{" + ids(in: body).map { "\"\($0)\":" + entry($0) }.joined(separator: ",") + "}"
        return .json(status: 200, body: completion(content))
    }

    private static func format4(_ v: UInt32) -> String {
        let hex = String(v, radix: 16)
        return String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    /// The finding ids (`f1`, …) a request asks about: its schema's last `required` list.
    package static func ids(in body: String) -> [String] {
        guard let range = body.range(of: "\"required\":[", options: .backwards) else { return [] }
        let rest = body[range.upperBound...]
        guard let end = rest.firstIndex(of: "]") else { return [] }
        return rest[..<end].split(separator: ",").map { $0.trimmingCharacters(in: .init(charactersIn: "\"")) }
    }

    private final class Counter: Sendable {
        let value = Mutex(0)
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        // One instance per connection, used only on that connection's event loop.
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private let reply: @Sendable (String, Int) -> Reply
        private let counter: Counter
        private var head: HTTPRequestHead?
        private var body: [UInt8] = []

        init(reply: @escaping @Sendable (String, Int) -> Reply, counter: Counter) {
            self.reply = reply
            self.counter = counter
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                head = h
                body = []
            case .body(var buffer):
                body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                guard let head else { return }
                if head.uri.hasSuffix("/models") {
                    respond(
                        .json(
                            status: 200,
                            body: #"{"object":"list","data":[{"id":"scripted","object":"model","owned_by":"scripted-worker"}]}"#),
                        context)
                    return
                }
                let index = counter.value.withLock { n in
                    defer { n += 1 }
                    return n
                }
                respond(reply(String(decoding: body, as: UTF8.self), index), context)
            }
        }

        private func respond(_ r: Reply, _ context: ChannelHandlerContext) {
            switch r {
            case .json(let status, let text):
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Content-Length", value: String(text.utf8.count))
                context.write(
                    wrapOutboundOut(.head(.init(version: .http1_1, status: .init(statusCode: status), headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            case .silence:
                break
            case .close:
                context.close(promise: nil)
            case .endlessBody:
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Transfer-Encoding", value: "chunked")
                context.writeAndFlush(wrapOutboundOut(.head(.init(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                drip(context)
            case .delayed(let ms, let next):
                context.eventLoop.scheduleTask(in: .milliseconds(Int64(ms))) { self.respond(next, context) }
            }
        }

        private func drip(_ context: ChannelHandlerContext) {
            guard context.channel.isActive else { return }
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "{\"choices\":[ ")))), promise: nil)
            context.eventLoop.scheduleTask(in: .milliseconds(20)) { self.drip(context) }
        }
    }
}
