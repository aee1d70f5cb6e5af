import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Messages received by the syslog listeners, waiting for the detection loop. Bounded: UDP
/// datagrams beyond the bound are dropped and counted (UDP senders cannot be slowed); stream
/// connections stop being read until the loop has caught up, so TCP senders are slowed, not dropped.
package final class IngressQueue: Sendable {
    package struct Message: Sendable {
        package var bytes: [UInt8]
        package var listener: Int
        package var truncated: Bool
    }

    package struct Counters: Sendable, Equatable {
        package var received = 0
        package var dropped = 0
        package var truncated = 0
        package var refusedConnections = 0
    }

    private struct State {
        var messages: [Message] = []
        var counters = Counters()
        var paused: [any Channel] = []
    }

    private let state = Mutex(State())
    package let capacity: Int
    /// Becomes readable when messages arrive in an empty queue, so the loop can sleep in poll(2)
    /// and still take a message the moment it comes.
    package let wakeDescriptor: Int32
    private let wakeWriter: Int32

    package init(capacity: Int = 100_000) {
        self.capacity = capacity
        var ends: [Int32] = [-1, -1]
        _ = pipe(&ends)
        for fd in ends {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeDescriptor = ends[0]
        wakeWriter = ends[1]
    }

    deinit {
        close(wakeDescriptor)
        close(wakeWriter)
    }

    private func wake() {
        var one: UInt8 = 1
        _ = write(wakeWriter, &one, 1)
    }

    /// Clears the wake-ups after the loop woke.
    package func clearWake() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while buffer.withUnsafeMutableBytes({ read(wakeDescriptor, $0.baseAddress!, $0.count) }) > 0 {}
    }

    /// Queues a datagram; false (and counted) when the queue is full.
    func offerDatagram(_ m: Message) -> Bool {
        let (taken, first) = state.withLock { s -> (Bool, Bool) in
            guard s.messages.count < capacity else {
                s.counters.dropped += 1
                return (false, false)
            }
            s.messages.append(m)
            s.counters.received += 1
            if m.truncated { s.counters.truncated += 1 }
            return (true, s.messages.count == 1)
        }
        if first { wake() }
        return taken
    }

    /// Queues stream messages; returns false when the connection should pause reading.
    func offerStream(_ ms: [Message], from channel: any Channel) -> Bool {
        let (open, first) = state.withLock { s -> (Bool, Bool) in
            let wasEmpty = s.messages.isEmpty
            s.messages.append(contentsOf: ms)
            s.counters.received += ms.count
            s.counters.truncated += ms.count { $0.truncated }
            guard s.messages.count < capacity else {
                s.paused.append(channel)
                return (false, wasEmpty && !ms.isEmpty)
            }
            return (true, wasEmpty && !ms.isEmpty)
        }
        if first { wake() }
        return open
    }

    func refused() { state.withLock { $0.counters.refusedConnections += 1 } }

    /// Messages waiting now.
    package var depth: Int { state.withLock { $0.messages.count } }

    /// Moves everything queued into `batch` (emptied first); paused connections resume reading.
    /// The two buffers trade places, so a steady stream allocates no new queue storage.
    package func drain(into batch: inout [Message]) {
        batch.removeAll(keepingCapacity: true)
        let paused = state.withLock { s in
            swap(&s.messages, &batch)
            defer { s.paused.removeAll() }
            return s.paused
        }
        for channel in paused {
            channel.eventLoop.execute {
                channel.setOption(ChannelOptions.autoRead, value: true).whenSuccess { channel.read() }
            }
        }
    }

    package var counters: Counters { state.withLock { $0.counters } }
}

/// The configured syslog listeners: UDP and unix datagram sockets, TCP and unix stream sockets
/// (LF framing or RFC 6587 octet counting, detected per connection), with a message size limit
/// and a connection limit.
package final class SyslogListeners {
    package let queue: IngressQueue
    private let group: MultiThreadedEventLoopGroup
    private var channels: [any Channel] = []
    /// Where each listener ended up (the port a `:0` listener got), in configuration order.
    package private(set) var addresses: [String] = []

    package init(queue: IngressQueue) {
        self.queue = queue
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    /// Binds every listener; a listener that cannot bind is an error naming it.
    package func start(_ listeners: [DaemonConfiguration.Listener]) throws {
        for (index, l) in listeners.enumerated() {
            let queue = queue
            let channel: any Channel
            do {
                switch l.transport {
                case .udp, .unixgram:
                    let bootstrap = DatagramBootstrap(group: group)
                        .channelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                        .channelOption(
                            ChannelOptions.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: l.maxMessageBytes + 1)
                        )
                        .channelInitializer { ch in
                            ch.eventLoop.makeCompletedFuture {
                                try ch.pipeline.syncOperations.addHandler(
                                    DatagramHandler(queue: queue, listener: index, limit: l.maxMessageBytes))
                            }
                        }
                    channel =
                        try l.transport == .udp
                        ? bootstrap.bind(host: l.address, port: l.port ?? 0).wait()
                        : bootstrap.bind(unixDomainSocketPath: l.address, cleanupExistingSocketFile: true).wait()
                case .tcp, .unix:
                    let open = ConnectionCount(0)
                    let bootstrap = ServerBootstrap(group: group)
                        .serverChannelOption(ChannelOptions.backlog, value: 256)
                        .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                        .childChannelInitializer { ch in
                            ch.eventLoop.makeCompletedFuture {
                                try ch.pipeline.syncOperations.addHandler(
                                    StreamHandler(
                                        queue: queue, listener: index, limit: l.maxMessageBytes, open: open, maxOpen: l.maxConnections))
                            }
                        }
                    channel =
                        try l.transport == .tcp
                        ? bootstrap.bind(host: l.address, port: l.port ?? 0).wait()
                        : bootstrap.bind(unixDomainSocketPath: l.address, cleanupExistingSocketFile: true).wait()
                }
            } catch {
                throw LiveRunner.Refusal(description: "cannot listen on \(Self.describe(l)): \(error)")
            }
            channels.append(channel)
            var bound = l
            if let port = channel.localAddress?.port { bound.port = port }
            addresses.append(Self.describe(bound))
        }
    }

    static func describe(_ l: DaemonConfiguration.Listener) -> String {
        switch l.transport {
        case .udp, .tcp: "\(l.transport.rawValue)://\(l.address.contains(":") ? "[\(l.address)]" : l.address):\(l.port ?? 0)"
        case .unix, .unixgram: "\(l.transport.rawValue)://\(l.address)"
        }
    }

    package func stop() {
        for c in channels { try? c.close().wait() }
        channels.removeAll()
        try? group.syncShutdownGracefully()
    }
}

/// A counter shared by the connections of one stream listener.
final class ConnectionCount: Sendable {
    let value: Atomic<Int>
    init(_ v: Int) { value = Atomic(v) }
}

/// One datagram, one message (cut at the limit).
private final class DatagramHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let queue: IngressQueue
    let listener: Int
    let limit: Int

    init(queue: IngressQueue, listener: Int, limit: Int) {
        self.queue = queue
        self.listener = listener
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        var bytes = Array(envelope.data.readableBytesView)
        let cut = bytes.count > limit
        if cut { bytes.removeLast(bytes.count - limit) }
        while let last = bytes.last, last == 0x0A || last == 0x00 { bytes.removeLast() }
        _ = queue.offerDatagram(.init(bytes: bytes, listener: listener, truncated: cut))
    }
}

/// A stream connection: LF-framed or RFC 6587 octet-counted, decided by its first byte.
private final class StreamHandler: ChannelInboundHandler, @unchecked Sendable {
    // Used only on its connection's event loop.
    typealias InboundIn = ByteBuffer
    let queue: IngressQueue
    let listener: Int
    let limit: Int
    let open: ConnectionCount
    let maxOpen: Int
    private var buffer: [UInt8] = []
    private var octetCounting: Bool?
    /// Bytes of an over-long message still to be discarded (octet counting), or discarding to the next LF.
    private var discard = 0
    private var discardLine = false
    private var counted = false

    init(queue: IngressQueue, listener: Int, limit: Int, open: ConnectionCount, maxOpen: Int) {
        self.queue = queue
        self.listener = listener
        self.limit = limit
        self.open = open
        self.maxOpen = maxOpen
    }

    func channelActive(context: ChannelHandlerContext) {
        if open.value.wrappingAdd(1, ordering: .relaxed).newValue > maxOpen {
            open.value.wrappingSubtract(1, ordering: .relaxed)
            queue.refused()
            context.close(promise: nil)
            return
        }
        counted = true
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !buffer.isEmpty, octetCounting == false, !discardLine {
            // The last message of a connection may lack its LF.
            _ = queue.offerStream([.init(bytes: buffer, listener: listener, truncated: false)], from: context.channel)
            buffer.removeAll()
        }
        if counted { open.value.wrappingSubtract(1, ordering: .relaxed) }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let incoming = unwrapInboundIn(data)
        buffer.append(contentsOf: incoming.readableBytesView)
        var out: [IngressQueue.Message] = []
        if octetCounting == nil, let first = buffer.first(where: { $0 != 0x0A && $0 != 0x0D }) {
            octetCounting = (0x31...0x39).contains(first)
        }
        if octetCounting == true { frameOctets(&out) } else { frameLines(&out) }
        if !out.isEmpty, !queue.offerStream(out, from: context.channel) {
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        }
    }

    private func frameLines(_ out: inout [IngressQueue.Message]) {
        var start = 0
        while true {
            if discardLine {
                guard let nl = buffer[start...].firstIndex(of: 0x0A) else {
                    start = buffer.count
                    break
                }
                start = nl + 1
                discardLine = false
                continue
            }
            if let nl = buffer[start...].firstIndex(of: 0x0A), nl - start <= limit {
                var end = nl
                if end > start, buffer[end - 1] == 0x0D { end -= 1 }
                if end > start { out.append(.init(bytes: Array(buffer[start..<end]), listener: listener, truncated: false)) }
                start = nl + 1
            } else if buffer.count - start > limit {
                out.append(.init(bytes: Array(buffer[start..<(start + limit)]), listener: listener, truncated: true))
                start += limit
                discardLine = true
            } else {
                break
            }
        }
        buffer.removeFirst(start)
    }

    private func frameOctets(_ out: inout [IngressQueue.Message]) {
        var start = 0
        while start < buffer.count {
            if discard > 0 {
                let take = min(discard, buffer.count - start)
                discard -= take
                start += take
                continue
            }
            // "LEN SP MSG": LEN is at most 9 digits.
            guard let space = buffer[start..<min(buffer.count, start + 10)].firstIndex(of: 0x20) else {
                if buffer.count - start >= 10 {
                    // Not octet counting after all: treat the rest of the connection as lines.
                    octetCounting = false
                    buffer.removeFirst(start)
                    frameLines(&out)
                    return
                }
                break
            }
            guard let length = Self.decimal(buffer[start..<space]) else {
                octetCounting = false
                buffer.removeFirst(start)
                frameLines(&out)
                return
            }
            let body = space + 1
            if length > limit {
                guard buffer.count - body >= limit else { break }
                out.append(.init(bytes: Array(buffer[body..<(body + limit)]), listener: listener, truncated: true))
                discard = length - limit
                start = body + limit
                continue
            }
            guard buffer.count - body >= length else { break }
            var bytes = Array(buffer[body..<(body + length)])
            while let last = bytes.last, last == 0x0A { bytes.removeLast() }
            out.append(.init(bytes: bytes, listener: listener, truncated: false))
            start = body + length
        }
        buffer.removeFirst(start)
    }

    /// The frame length: ASCII digits only (no String per message).
    private static func decimal(_ digits: ArraySlice<UInt8>) -> Int? {
        guard !digits.isEmpty else { return nil }
        var v = 0
        for d in digits {
            guard d >= 0x30, d <= 0x39 else { return nil }
            v = v * 10 + Int(d - 0x30)
        }
        return v
    }
}
