import EventModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Follows one log file as `tail -F` does, from a checkpoint, across rotation.
///
/// - rename-and-create (logrotate's default): the old file is read to its end, then the new
///   file at the path from its start; when logtriage was down during the rotation, the rest of
///   the old file is read from `PATH.1` if that is the file the checkpoint names;
/// - copytruncate: the file shrinking below the read offset restarts it at 0 (lines written
///   between the copy and the truncation cannot be recovered; the truncation is counted);
/// - a file that does not exist yet is opened when it appears;
/// - a different file that reuses the checkpoint's inode is told apart by a fingerprint of its
///   first bytes.
///
/// Only complete lines are handed out: a partial last line waits for its newline (a file that
/// is rotated away ends its last line). Lines over `maxLineBytes` are cut and counted.
package final class FileTail {
    /// Where reading stands: the position after the last line handed out.
    package struct Checkpoint: Codable, Sendable, Equatable {
        package var device: UInt64
        package var inode: UInt64
        package var offset: UInt64
        /// Lines handed out before `offset` (for line numbers in source positions).
        package var line: Int
        /// FNV-1a of the file's first `fingerprintLength` bytes.
        package var fingerprint: UInt64
        package var fingerprintLength: Int

        package init(device: UInt64, inode: UInt64, offset: UInt64, line: Int, fingerprint: UInt64, fingerprintLength: Int) {
            self.device = device
            self.inode = inode
            self.offset = offset
            self.line = line
            self.fingerprint = fingerprint
            self.fingerprintLength = fingerprintLength
        }
    }

    package struct Statistics: Sendable, Equatable {
        package var lines = 0
        package var bytes: UInt64 = 0
        package var truncatedLines = 0
        package var rotations = 0
        package var truncations = 0
    }

    package let path: String
    package let maxLineBytes: Int
    package private(set) var statistics = Statistics()
    private var fd: Int32 = -1
    private var identity: (device: UInt64, inode: UInt64)?
    private var fingerprint: (value: UInt64, length: Int) = (FNV1a().value, 0)
    /// Bytes read but not yet handed out as lines, starting at file offset `pendingOffset`.
    private var pending: [UInt8] = []
    /// Read buffer, reused across reads.
    private var chunk = [UInt8](repeating: 0, count: 1 << 16)
    private var pendingOffset: UInt64 = 0
    private var line = 0
    /// Inside the remainder of a cut line: bytes are dropped up to the next newline.
    private var skipping = false
    private var resume: Checkpoint?
    private let startAtEnd: Bool

    package static let fingerprintBytes = 256

    /// `checkpoint` resumes where an earlier run stopped; without one reading starts at the
    /// beginning of the file, or at its end with `startAtEnd`.
    package init(path: String, checkpoint: Checkpoint?, startAtEnd: Bool = false, maxLineBytes: Int = 1 << 20) {
        self.path = path
        resume = checkpoint
        self.startAtEnd = startAtEnd
        self.maxLineBytes = max(64, maxLineBytes)
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// The position after the last line handed out, or nil before the file was first opened.
    package var checkpoint: Checkpoint? {
        guard let identity else { return resume }
        return Checkpoint(
            device: identity.device, inode: identity.inode, offset: pendingOffset, line: line, fingerprint: fingerprint.value,
            fingerprintLength: fingerprint.length)
    }

    /// Whether the file is open (it may not exist yet).
    package var isOpen: Bool { fd >= 0 }

    /// Hands out the complete lines available now, up to `maxLines`; returns how many.
    /// `body` gets each line (without its newline), its position and whether it was cut.
    package func poll(maxLines: Int = .max, _ body: (UnsafeBufferPointer<UInt8>, SourcePosition, Bool) -> Void) throws(IngestError)
        -> Int
    {
        var handed = 0
        if fd < 0, try !open() { return 0 }
        while handed < maxLines {
            handed += emitLines(limit: maxLines - handed, body)
            if handed >= maxLines { break }
            if try readMore() { continue }
            // At the end of the file: has it been rotated or truncated under us?
            switch try rotationState() {
            case .same: return handed
            case .truncated:
                statistics.truncations += 1
                restart(at: 0)
                _ = lseek(fd, 0, SEEK_SET)
            case .replaced:
                // The file we hold is finished: its last line ends with it.
                handed += finishPartial(body)
                close(fd)
                fd = -1
                identity = nil
                statistics.rotations += 1
                resume = nil
                if try !open(fresh: true) { return handed }
            }
        }
        return handed
    }

    private enum Rotation { case same, truncated, replaced }

    private func rotationState() throws(IngestError) -> Rotation {
        var st = stat()
        // Gone without a successor yet: keep the file we hold until one appears.
        if stat(path, &st) != 0 { return .same }
        guard let identity else { return .same }
        if UInt64(st.st_dev) != identity.device || UInt64(st.st_ino) != identity.inode { return .replaced }
        var own = stat()
        if fstat(fd, &own) == 0, UInt64(own.st_size) < pendingOffset + UInt64(pending.count) { return .truncated }
        return .same
    }

    /// Opens the file at `path`, placing the read offset from the checkpoint. False if it does not exist yet.
    private func open(fresh: Bool = false) throws(IngestError) -> Bool {
        let f = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard f >= 0 else {
            if errno == ENOENT || errno == ENOTDIR { return false }
            throw IngestError.open(path: path, errno: errno)
        }
        var st = stat()
        guard fstat(f, &st) == 0 else {
            close(f)
            throw IngestError.read(errno: errno)
        }
        fd = f
        identity = (UInt64(st.st_dev), UInt64(st.st_ino))
        let size = UInt64(st.st_size)
        fingerprint = Self.fingerprint(f, length: Int(min(size, UInt64(Self.fingerprintBytes))))
        restart(at: 0)
        if fresh { return true }
        if let c = resume {
            if c.device == identity!.device, c.inode == identity!.inode, size >= c.offset,
                Self.fingerprint(f, length: c.fingerprintLength).value == c.fingerprint
            {
                restart(at: c.offset, line: c.line)
            } else if let old = Self.rotatedCopy(of: path, matching: c) {
                // Rotated while we were down: hold the old file and finish it first; at its end
                // the usual rotation check moves on to the file at the path.
                close(f)
                fd = old
                identity = (c.device, c.inode)
                fingerprint = (c.fingerprint, c.fingerprintLength)
                restart(at: c.offset, line: c.line)
            }
        } else if startAtEnd {
            restart(at: size)
        }
        _ = lseek(fd, off_t(pendingOffset), SEEK_SET)
        return true
    }

    private func restart(at offset: UInt64, line: Int = 0) {
        pending.removeAll(keepingCapacity: true)
        pendingOffset = offset
        self.line = line
        skipping = false
    }

    /// Reads what is available into `pending`; false at the end of the file.
    private func readMore() throws(IngestError) -> Bool {
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n > 0 {
                pending.append(contentsOf: chunk[..<n])
                statistics.bytes += UInt64(n)
                if fingerprint.length < Self.fingerprintBytes {
                    // A file opened empty or short: its fingerprint covers more once it has grown.
                    let size = pendingOffset + UInt64(pending.count)
                    fingerprint = Self.fingerprint(fd, length: Int(min(size, UInt64(Self.fingerprintBytes))))
                }
                return true
            }
            if n < 0, errno == EINTR { continue }
            if n < 0, errno != EAGAIN { throw IngestError.read(errno: errno) }
            return false
        }
    }

    /// Hands out complete lines from `pending`.
    private func emitLines(limit: Int, _ body: (UnsafeBufferPointer<UInt8>, SourcePosition, Bool) -> Void) -> Int {
        var handed = 0
        var consumed = 0
        pending.withUnsafeBufferPointer { buf in
            while handed < limit, consumed < buf.count {
                let rest = UnsafeBufferPointer(rebasing: buf[consumed...])
                let nl = memchr(rest.baseAddress!, 0x0A, rest.count).map {
                    rest.baseAddress!.distance(to: $0.assumingMemoryBound(to: UInt8.self))
                }
                if skipping {
                    guard let nl else {
                        consumed = buf.count
                        break
                    }
                    consumed += nl + 1
                    skipping = false
                    continue
                }
                if let nl, nl <= maxLineBytes {
                    var end = nl
                    if end > 0, rest[end - 1] == 0x0D { end -= 1 }
                    line += 1
                    body(UnsafeBufferPointer(rebasing: rest[..<end]), position(consumed), false)
                    statistics.lines += 1
                    consumed += nl + 1
                    handed += 1
                } else if nl != nil || rest.count >= maxLineBytes {
                    line += 1
                    body(UnsafeBufferPointer(rebasing: rest[..<maxLineBytes]), position(consumed), true)
                    statistics.lines += 1
                    statistics.truncatedLines += 1
                    handed += 1
                    if let nl {
                        consumed += nl + 1
                    } else {
                        consumed = buf.count
                        skipping = true
                    }
                } else {
                    break
                }
            }
        }
        if consumed > 0 {
            pending.removeFirst(consumed)
            pendingOffset += UInt64(consumed)
        }
        return handed
    }

    /// At rotation: a last line without a newline is complete now.
    private func finishPartial(_ body: (UnsafeBufferPointer<UInt8>, SourcePosition, Bool) -> Void) -> Int {
        guard !pending.isEmpty, !skipping else { return 0 }
        line += 1
        let cut = pending.count > maxLineBytes
        pending.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0.prefix(maxLineBytes)), position(0), cut) }
        statistics.lines += 1
        if cut { statistics.truncatedLines += 1 }
        pendingOffset += UInt64(pending.count)
        pending.removeAll()
        return 1
    }

    private func position(_ consumed: Int) -> SourcePosition {
        SourcePosition(source: path, line: line, offset: pendingOffset + UInt64(consumed))
    }

    private static func fingerprint(_ fd: Int32, length: Int) -> (value: UInt64, length: Int) {
        var h = FNV1a()
        guard length > 0 else { return (h.value, 0) }
        var bytes = [UInt8](repeating: 0, count: length)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, length, 0) }
        guard n == length else { return (0, length) }
        h.combine(bytes)
        return (h.value, length)
    }

    /// `PATH.1`, opened, if it is the file `c` names (logrotate's first rotated name).
    private static func rotatedCopy(of path: String, matching c: Checkpoint) -> Int32? {
        let f = Glibc.open(path + ".1", O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard f >= 0 else { return nil }
        var st = stat()
        if fstat(f, &st) == 0, UInt64(st.st_dev) == c.device, UInt64(st.st_ino) == c.inode, UInt64(st.st_size) >= c.offset,
            fingerprint(f, length: c.fingerprintLength).value == c.fingerprint
        {
            return f
        }
        close(f)
        return nil
    }
}
