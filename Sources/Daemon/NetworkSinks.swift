import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How much a network output may hold back, and how long a commit waits for it.
package struct SinkLimits: Sendable, Equatable {
    /// Bytes buffered per consumer; lines beyond it are shed and counted.
    package var bufferBytes = 8 << 20
    /// Longest a commit waits for a consumer to take what is buffered before it goes on.
    package var maxBlockSeconds = 1.0

    package init() {}

    /// When a wait that starts now must end.
    var blockDeadline: ContinuousClock.Instant { .now + .milliseconds(Int64(maxBlockSeconds * 1000)) }
}

/// Lines waiting for one non-blocking stream socket, bounded in bytes.
struct PendingStream {
    var fd: Int32
    private var lines: [[UInt8]] = []
    private var head = 0
    /// Bytes of the first waiting line already sent.
    private var sentOfHead = 0
    /// Bytes waiting.
    private(set) var count = 0
    /// Set when the consumer did not make room within the wait: lines are shed at once until
    /// it has taken half of its buffer, so a stalled consumer costs one wait, not one per line.
    var shedding = false
    var isEmpty: Bool { head == lines.count }

    init(fd: Int32) { self.fd = fd }

    /// Queues `line` unless that would pass `limit` bytes; returns false when it was shed.
    mutating func enqueue(_ line: [UInt8], limit: Int) -> Bool {
        guard count + line.count <= limit else { return false }
        lines.append(line)
        count += line.count
        return true
    }

    enum Outcome { case drained, blocked, failed(Int32) }

    /// Queues `line`, first waiting up to `limits.maxBlockSeconds` for the consumer to make room
    /// (backpressure); false when the line was shed. A failed connection is left for the caller.
    mutating func offer(_ line: [UInt8], limits: SinkLimits) -> Bool {
        if shedding, count <= limits.bufferBytes / 2 { shedding = false }
        if enqueue(line, limit: limits.bufferBytes) { return true }
        if shedding || fd < 0 { return false }
        let deadline = limits.blockDeadline
        while true {
            if case .failed = send() { return false }
            if enqueue(line, limit: limits.bufferBytes) { return true }
            if !waitWritable(until: deadline) { break }
        }
        shedding = true
        return false
    }

    /// Writes what the socket takes without blocking.
    mutating func send() -> Outcome {
        defer { compact() }
        while head < lines.count {
            let n = lines[head].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + sentOfHead, $0.count - sentOfHead, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                sentOfHead += n
                count -= n
                if sentOfHead == lines[head].count {
                    head += 1
                    sentOfHead = 0
                }
            } else if n < 0, errno == EINTR {
                continue
            } else if n < 0, errno == EAGAIN || errno == EWOULDBLOCK {
                return .blocked
            } else {
                return .failed(n == 0 ? EPIPE : errno)
            }
        }
        return .drained
    }

    /// Sends, waiting for the socket while it is full, until everything is sent, the socket
    /// fails, or `deadline` passes (nil: no waiting).
    mutating func flush(until deadline: ContinuousClock.Instant?) -> Outcome {
        while true {
            let outcome = send()
            guard case .blocked = outcome, let deadline, waitWritable(until: deadline) else { return outcome }
        }
    }

    /// After the connection failed: a line sent in part is dropped (its rest would break the
    /// framing on a new connection); returns whether one was.
    mutating func dropPartial() -> Bool {
        guard sentOfHead > 0 else { return false }
        count -= lines[head].count - sentOfHead
        head += 1
        sentOfHead = 0
        compact()
        return true
    }

    private mutating func compact() {
        if head == lines.count {
            lines.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1024, head * 2 > lines.count {
            lines.removeFirst(head)
            head = 0
        }
    }

    /// Waits until the socket can take more, at most until `deadline`; false when time ran out.
    func waitWritable(until deadline: ContinuousClock.Instant) -> Bool {
        let left = deadline - .now
        guard left > .zero else { return false }
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let ms = Int32(max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
        return poll(&p, 1, ms) > 0
    }
}

func setNonBlocking(_ fd: Int32) {
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
}

/// A unix stream socket that local consumers connect to; each gets every finding written after
/// it connected. A consumer that stops reading is given `bufferBytes`, then loses lines (counted).
final class SocketSink {
    let path: String
    private let limits: SinkLimits
    private var listener: Int32 = -1
    private var clients: [PendingStream] = []
    private(set) var shed = 0

    init(path: String, limits: SinkLimits) throws {
        self.path = path
        self.limits = limits
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        unlink(path)
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0 else { throw LiveRunner.Refusal(description: "socket output \(path): \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(listener)
            throw LiveRunner.Refusal(description: "socket output \(path): path too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else {
            let e = errno
            close(listener)
            throw LiveRunner.Refusal(description: "socket output \(path): \(String(cString: strerror(e)))")
        }
        chmod(path, 0o660)
        setNonBlocking(listener)
    }

    deinit {
        for c in clients { close(c.fd) }
        if listener >= 0 {
            close(listener)
            unlink(path)
        }
    }

    var consumers: Int { clients.count }

    private func acceptClients() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 { return }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            setNonBlocking(fd)
            clients.append(PendingStream(fd: fd))
        }
    }

    func write(_ line: [UInt8]) {
        acceptClients()
        for i in clients.indices where !clients[i].offer(line, limits: limits) { shed += 1 }
        flush(until: nil)
    }

    /// Accepts new consumers and sends what they can take now, without waiting.
    func pump() {
        acceptClients()
        flush(until: nil)
    }

    /// Gives every consumer up to `maxBlockSeconds` to take what it has buffered.
    func drain() {
        acceptClients()
        flush(until: limits.blockDeadline)
    }

    /// Sends to every consumer; one whose connection failed is closed and forgotten.
    private func flush(until deadline: ContinuousClock.Instant?) {
        var i = 0
        while i < clients.count {
            if case .failed = clients[i].flush(until: deadline) {
                close(clients[i].fd)
                clients.remove(at: i)
            } else {
                i += 1
            }
        }
    }
}

/// RFC 5424 messages with octet-counting framing (RFC 6587) over TCP to a collector or SIEM.
/// While the peer is away, lines wait in a bounded buffer and the connection is retried with
/// backoff; beyond the buffer, lines are shed and counted.
final class SyslogSink {
    let host: String
    let port: Int
    private let limits: SinkLimits
    private var stream: PendingStream?
    private var connecting = false
    /// Lines waiting while there is no connection (framed already).
    private var backlog = PendingStream(fd: -1)
    private(set) var shed = 0
    private var retryAt = ContinuousClock.now
    private var backoff: Duration = .seconds(1)
    private(set) var lastError: String?
    private let hostname = ProcessInfo.processInfo.hostName
    private let pid = getpid()

    init(host: String, port: Int, limits: SinkLimits) {
        self.host = host
        self.port = port
        self.limits = limits
    }

    deinit { if let stream { close(stream.fd) } }

    var connected: Bool { stream != nil && !connecting }

    /// One finding as `LEN <PRI>1 TIMESTAMP HOST logtriage PID MSGID - JSON`; the priority
    /// is facility authpriv with a severity from the finding's level.
    func frame(_ json: [UInt8], severity: Int, msgid: String) -> [UInt8] {
        // critical 5 → crit (2), high 4 → err (3), medium 3 → warning (4), low 2 → notice (5), informational → info (6)
        let level = max(2, min(6, 7 - severity))
        var body = Array("<\(10 * 8 + level)>1 \(Self.timestamp()) \(hostname) logtriage \(pid) \(msgid) - ".utf8)
        body += json.last == 10 ? json.dropLast() : json[...]
        return Array("\(body.count) ".utf8) + body
    }

    /// Now as RFC 5424 wants it: `2026-11-27T10:00:00.123Z`.
    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let millis = Int(ts.tv_nsec / 1_000_000)
        let ms = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return
            "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(ms)Z"
    }

    func write(_ framed: [UInt8]) {
        connectIfDue()
        checkPeer()
        if var s = stream, !connecting {
            if !s.offer(framed, limits: limits) { shed += 1 }
            stream = s
            flush(until: nil)
        } else if !backlog.enqueue(framed, limit: limits.bufferBytes) {
            shed += 1
        }
    }

    /// A collector that closed its end (it stopped or restarted) is noticed before more is
    /// written into a connection nobody reads.
    private func checkPeer() {
        guard let s = stream, !connecting else { return }
        // POLLRDHUP (0x2000, not exported to Swift): the peer shut down its side.
        var p = pollfd(fd: s.fd, events: Int16(POLLIN) | Int16(0x2000), revents: 0)
        guard poll(&p, 1, 0) > 0 else { return }
        var probe: UInt8 = 0
        let closed =
            p.revents & (Int16(0x2000) | Int16(POLLHUP) | Int16(POLLERR)) != 0
            || (p.revents & Int16(POLLIN) != 0 && recv(s.fd, &probe, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) == 0)
        if closed { disconnect(ECONNRESET, unsent: s) }
    }

    /// Reconnects when due and sends what the connection takes now, without waiting.
    func pump() {
        connectIfDue()
        checkPeer()
        flush(until: nil)
    }

    /// Gives the collector up to `maxBlockSeconds` to take what is buffered.
    func drain() {
        connectIfDue()
        checkPeer()
        let deadline = limits.blockDeadline
        if connecting, let s = stream {
            guard s.waitWritable(until: deadline) else { return }
            finishConnect()
        }
        flush(until: deadline)
    }

    private func flush(until deadline: ContinuousClock.Instant?) {
        guard var s = stream, !connecting else { return }
        if case .failed(let e) = s.flush(until: deadline) { disconnect(e, unsent: s) } else { stream = s }
    }

    /// The collector's address, looked up off the detection loop: a resolver that hangs (DNS
    /// down) must not hold detection, so the loop only ever reads the last answer.
    private final class Resolution: Sendable {
        struct Answer: Sendable {
            var family: Int32
            var address: [UInt8]
        }
        enum State: Sendable {
            case none, pending, resolved(Answer), failed(String)
        }
        let state = Mutex(State.none)

        func start(host: String, port: Int) {
            let go = state.withLock { s -> Bool in
                if case .pending = s { return false }
                s = .pending
                return true
            }
            guard go else { return }
            DispatchQueue.global().async {
                var hints = addrinfo()
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
                var result: UnsafeMutablePointer<addrinfo>?
                let r = getaddrinfo(host, String(port), &hints, &result)
                defer { if result != nil { freeaddrinfo(result) } }
                guard r == 0, let info = result, let addr = info.pointee.ai_addr else {
                    let reason = String(cString: gai_strerror(r))
                    self.state.withLock { $0 = .failed("cannot resolve \(host): \(reason)") }
                    return
                }
                let bytes = Array(UnsafeRawBufferPointer(start: addr, count: Int(info.pointee.ai_addrlen)))
                self.state.withLock { $0 = .resolved(Answer(family: info.pointee.ai_family, address: bytes)) }
            }
        }
    }

    private let resolution = Resolution()

    private func connectIfDue() {
        if connecting { finishConnect() }
        guard stream == nil, ContinuousClock.now >= retryAt else { return }
        let answer: Resolution.Answer
        switch resolution.state.withLock({ $0 }) {
        case .resolved(let a): answer = a
        case .pending: return
        case .none:
            resolution.start(host: host, port: port)
            return
        case .failed(let reason):
            resolution.state.withLock { $0 = .none }
            scheduleRetry(reason)
            return
        }
        let fd = socket(answer.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            scheduleRetry(String(cString: strerror(errno)))
            return
        }
        setNonBlocking(fd)
        let started = answer.address.withUnsafeBytes {
            connect(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count))
        }
        if started != 0, errno != EINPROGRESS {
            let e = errno
            close(fd)
            scheduleRetry(String(cString: strerror(e)))
            return
        }
        stream = PendingStream(fd: fd)
        connecting = true
        finishConnect()
    }

    /// Completes a non-blocking connect once the socket is writable; then the backlog goes first.
    private func finishConnect() {
        guard connecting, let s = stream else { return }
        var p = pollfd(fd: s.fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&p, 1, 0) > 0 else { return }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &error, &length)
        guard error == 0 else {
            close(s.fd)
            stream = nil
            connecting = false
            scheduleRetry(String(cString: strerror(error)))
            return
        }
        connecting = false
        backoff = .seconds(1)
        lastError = nil
        // What waited while disconnected is sent first, in order.
        var waiting = backlog
        backlog = PendingStream(fd: -1)
        waiting.fd = s.fd
        if case .failed(let e) = waiting.send() { disconnect(e, unsent: waiting) } else { stream = waiting }
    }

    /// The connection failed: whole lines not sent wait for the next one.
    private func disconnect(_ error: Int32, unsent: PendingStream) {
        close(unsent.fd)
        var rest = unsent
        if rest.dropPartial() { shed += 1 }
        rest.fd = -1
        backlog = rest
        stream = nil
        connecting = false
        scheduleRetry(String(cString: strerror(error)))
    }

    private func scheduleRetry(_ reason: String) {
        // The next attempt looks the name up again: the collector may have moved.
        resolution.state.withLock { if case .resolved = $0 { $0 = .none } }
        lastError = "\(host):\(port): \(reason)"
        retryAt = ContinuousClock.now + backoff
        backoff = min(backoff * 2, .seconds(30))
    }
}
