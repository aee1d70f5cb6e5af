#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Buffered reads from a file descriptor, yielding lines and byte runs without a copy per line.
///
/// A line longer than `maxLineBytes` is cut at that length; the rest of it is skipped and the
/// line is reported as truncated, so a hostile megabyte line costs bounded memory.
package struct ByteReader: ~Copyable {
    private let fd: Int32
    private let ownsDescriptor: Bool
    private var buffer: UnsafeMutableBufferPointer<UInt8>
    private var start = 0
    private var end = 0
    private var atEOF = false
    /// Offset in the stream of `buffer[start]`.
    package private(set) var offset: UInt64 = 0
    package let maxLineBytes: Int
    /// The most one `read` asks for. The buffer holds a whole line of up to `maxLineBytes`, but
    /// filling all of it at once would pass a megabyte through the cache before the first
    /// line is parsed; reads of this size land in the same few cache-resident pages.
    private static let readSize = 1 << 16

    package init(fd: Int32, ownsDescriptor: Bool, maxLineBytes: Int = 1 << 20) {
        self.fd = fd
        self.ownsDescriptor = ownsDescriptor
        self.maxLineBytes = max(64, maxLineBytes)
        buffer = .allocate(capacity: max(1 << 16, self.maxLineBytes + 1))
    }

    deinit {
        buffer.deallocate()
        if ownsDescriptor { close(fd) }
    }

    /// Fills the buffer; returns false at end of input.
    private mutating func fill() throws(IngestError) -> Bool {
        if atEOF { return false }
        if start > 0 {
            let live = end - start
            if live > 0 {
                UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(
                    from: buffer.baseAddress! + start, byteCount: live)
            }
            start = 0
            end = live
        }
        if end == buffer.count { return true }
        while true {
            let n = read(fd, buffer.baseAddress! + end, min(buffer.count - end, Self.readSize))
            if n > 0 {
                end += n
                return true
            }
            if n == 0 {
                atEOF = true
                return false
            }
            if errno == EINTR { continue }
            throw IngestError.read(errno: errno)
        }
    }

    /// The next line without its terminator (`\n`, and a `\r` before it).
    /// `body` gets the line bytes, its start offset and whether it was cut.
    package mutating func nextLine<R>(
        _ body: (UnsafeBufferPointer<UInt8>, _ offset: UInt64, _ truncated: Bool) throws -> R
    ) throws -> R? {
        var scanFrom = start
        while true {
            if let nl = findNewline(from: scanFrom) {
                return try emitLine(upTo: nl, consume: nl + 1, truncated: false, body)
            }
            if end - start >= maxLineBytes {
                // Cut: keep the first maxLineBytes, then discard the rest of the line.
                let lineStart = offset
                let line = UnsafeBufferPointer(start: buffer.baseAddress! + start, count: maxLineBytes)
                let result = try body(line, lineStart, true)
                try skipRestOfLine()
                return result
            }
            scanFrom = end
            let before = start
            if try !fill() {
                if end > start {
                    return try emitLine(upTo: end, consume: end, truncated: false, body)
                }
                return nil
            }
            scanFrom -= before - start
        }
    }

    private func findNewline(from: Int) -> Int? {
        guard from < end else { return nil }
        let base = buffer.baseAddress!
        if let p = memchr(base + from, 0x0A, end - from) {
            return base.distance(to: p.assumingMemoryBound(to: UInt8.self))
        }
        return nil
    }

    private mutating func emitLine<R>(
        upTo lineEnd: Int, consume: Int, truncated: Bool,
        _ body: (UnsafeBufferPointer<UInt8>, UInt64, Bool) throws -> R
    ) throws -> R {
        var stop = lineEnd
        if stop > start && buffer[stop - 1] == 0x0D { stop -= 1 }
        let line = UnsafeBufferPointer(start: buffer.baseAddress! + start, count: stop - start)
        let lineOffset = offset
        offset += UInt64(consume - start)
        start = consume
        return try body(line, lineOffset, truncated)
    }

    private mutating func skipRestOfLine() throws {
        offset += UInt64(end - start)
        start = end
        while true {
            if try !fill() { return }
            if let nl = findNewline(from: start) {
                offset += UInt64(nl + 1 - start)
                start = nl + 1
                return
            }
            offset += UInt64(end - start)
            start = end
        }
    }

    /// Reads exactly `count` bytes (journal export binary fields). Returns nil at end of input.
    package mutating func readBytes(_ count: Int) throws -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(min(count, 1 << 20))
        while out.count < count {
            if start == end, try !fill() { return nil }
            let take = min(count - out.count, end - start)
            out.append(contentsOf: UnsafeBufferPointer(start: buffer.baseAddress! + start, count: take))
            start += take
            offset += UInt64(take)
        }
        return out
    }

    /// Skips `count` bytes without keeping them.
    package mutating func skipBytes(_ count: Int) throws -> Bool {
        var left = count
        while left > 0 {
            if start == end, try !fill() { return false }
            let take = min(left, end - start)
            start += take
            offset += UInt64(take)
            left -= take
        }
        return true
    }

    /// Up to `count` bytes from the current position, without consuming them.
    package mutating func peek(_ count: Int) throws -> [UInt8] {
        while end - start < count, try fill() {}
        return Array(UnsafeBufferPointer(start: buffer.baseAddress! + start, count: min(count, end - start)))
    }
}

package enum IngestError: Error, CustomStringConvertible, Equatable {
    case open(path: String, errno: Int32)
    case read(errno: Int32)

    package var description: String {
        switch self {
        case .open(let path, let e): "cannot open \(path): \(String(cString: strerror(e)))"
        case .read(let e): "read failed: \(String(cString: strerror(e)))"
        }
    }
}
