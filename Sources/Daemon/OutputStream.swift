import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Buffered writes to a file descriptor (stdout for `scan`).
package struct FileOutput: ~Copyable {
    private let fd: Int32
    private var buffer: [UInt8] = []
    package private(set) var failed: Int32?

    package init(fd: Int32) {
        self.fd = fd
        buffer.reserveCapacity(1 << 16)
    }

    package mutating func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    package mutating func write(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(contentsOf: bytes.assumingMemoryBound(to: UInt8.self))
        if buffer.count >= 1 << 16 { flush() }
    }

    package mutating func flush() {
        var done = 0
        while done < buffer.count, failed == nil {
            let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n > 0 {
                done += n
            } else if n < 0, errno == EINTR {
                continue
            } else {
                failed = errno
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes and fsyncs; a failure is kept in `failed`.
    package mutating func sync() {
        flush()
        if failed == nil, fsync(fd) != 0 { failed = errno }
    }

    deinit {
        if !buffer.isEmpty {
            buffer.withUnsafeBytes { _ = Glibc.write(fd, $0.baseAddress!, $0.count) }
        }
    }
}

/// Writes a line to standard error.
package func printError(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress!, $0.count) }
}

/// A `FileOutput` that several tasks write to (the scan thread and the triage consumers); each
/// `write` lands whole, in call order.
package final class SharedOutput: Sendable {
    private let output: Mutex<FileOutput>

    package init(fd: Int32) {
        output = Mutex(FileOutput(fd: fd))
    }

    package func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    package func write(_ bytes: UnsafeRawBufferPointer) {
        output.withLock { $0.write(bytes) }
    }

    /// Flushes and returns the errno of the first failed write, if any.
    package func flush() -> Int32? {
        output.withLock { o in
            o.flush()
            return o.failed
        }
    }

    /// Flushes and fsyncs; returns the errno of the first failure, if any.
    package func sync() -> Int32? {
        output.withLock { o in
            o.sync()
            return o.failed
        }
    }
}
