import Foundation
import Ingest
import Sigma

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the daemon has made durable: per source, the last position whose findings every durable
/// output holds, plus the detection state needed to resume (correlation windows and open
/// aggregation groups, as an opaque blob).
package struct Checkpoints: Codable, Sendable, Equatable {
    package var version = 1
    package var files: [String: FileTail.Checkpoint] = [:]
    /// The journal cursor after the last entry whose findings are durable.
    package var journalCursor: String?
    /// The entry at `journalCursor` is read again on resume: a session still held a failure there.
    package var journalCursorInclusive: Bool?
    /// The detection state (binary); stored after the JSON line, not inside it.
    package var correlationState: Data?

    package init() {}

    private enum CodingKeys: String, CodingKey { case version, files, journalCursor, journalCursorInclusive, correlationState }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decode(Int.self, forKey: .version)
        files = try c.decodeIfPresent([String: FileTail.Checkpoint].self, forKey: .files) ?? [:]
        journalCursor = try c.decodeIfPresent(String.self, forKey: .journalCursor)
        journalCursorInclusive = try c.decodeIfPresent(Bool.self, forKey: .journalCursorInclusive)
        // Files written before the state moved out of the JSON carry it here, base64.
        correlationState = try c.decodeIfPresent(Data.self, forKey: .correlationState)
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version)
        try c.encode(files, forKey: .files)
        try c.encodeIfPresent(journalCursor, forKey: .journalCursor)
        try c.encodeIfPresent(journalCursorInclusive, forKey: .journalCursorInclusive)
    }
}

/// Reads and writes `checkpoints.json` in the state directory: one line of JSON (positions),
/// then, when there is one, the detection state as raw bytes after the newline - a large state
/// is streamed as it is rather than copied into base64. A write is atomic and durable:
/// the new contents go to a temporary file that is fsynced, renamed over the old one, and the
/// directory is fsynced, so a crash leaves either the old or the new checkpoints, never a mix.
package struct CheckpointStore: Sendable {
    package let directory: String
    package var path: String { directory + "/checkpoints.json" }

    package init(directory: String) {
        self.directory = directory
    }

    package struct StoreError: Error, CustomStringConvertible {
        package var description: String
    }

    /// The saved checkpoints; none on a first start. A file that cannot be decoded is moved aside
    /// (`checkpoints.json.corrupt`) and reported, and reading starts afresh rather than not at all.
    package func load() throws -> (Checkpoints, warning: String?) {
        guard let data = FileManager.default.contents(atPath: path) else {
            if FileManager.default.fileExists(atPath: path) { throw StoreError(description: "\(path): cannot read") }
            return (Checkpoints(), nil)
        }
        do {
            let newline = data.firstIndex(of: 10)
            var c = try JSONDecoder().decode(Checkpoints.self, from: newline.map { data[..<$0] } ?? data)
            if let newline, newline + 1 < data.endIndex { c.correlationState = Data(data[(newline + 1)...]) }
            guard c.version == 1 else { throw StoreError(description: "unknown version \(c.version)") }
            return (c, nil)
        } catch {
            let aside = path + ".corrupt"
            try? FileManager.default.removeItem(atPath: aside)
            try? FileManager.default.moveItem(atPath: path, toPath: aside)
            return (Checkpoints(), "\(path): unreadable checkpoints (\(error)); moved to \(aside), sources start afresh")
        }
    }

    /// Writes `checkpoints` atomically and durably; `state`, when given, streams the detection
    /// state after the JSON line in place of `checkpoints.correlationState`.
    package func save(_ checkpoints: Checkpoints, state: ((inout SnapshotWriter) -> Void)? = nil) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var head = Array(try encoder.encode(checkpoints))
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError(description: "\(temporary): \(String(cString: strerror(errno)))") }
        func put(_ buffer: UnsafeRawBufferPointer) throws {
            var written = 0
            while written < buffer.count {
                let n = write(fd, buffer.baseAddress! + written, buffer.count - written)
                if n < 0, errno == EINTR { continue }
                guard n > 0 else {
                    let e = errno
                    close(fd)
                    throw StoreError(description: "\(temporary): \(String(cString: strerror(e)))")
                }
                written += n
            }
        }
        if let state {
            head.append(10)
            try head.withUnsafeBytes { try put($0) }
            var failure: (any Error)?
            var w = SnapshotWriter { chunk in
                do {
                    try put(chunk)
                    return true
                } catch {
                    failure = error
                    return false
                }
            }
            state(&w)
            if !w.finish() { throw failure ?? StoreError(description: "\(temporary): write failed") }
        } else if let state = checkpoints.correlationState {
            head.append(10)
            try head.withUnsafeBytes { try put($0) }
            try state.withUnsafeBytes { try put($0) }
        } else {
            try head.withUnsafeBytes { try put($0) }
        }
        guard fsync(fd) == 0 else {
            let e = errno
            close(fd)
            throw StoreError(description: "\(temporary): fsync: \(String(cString: strerror(e)))")
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw StoreError(description: "\(path): rename: \(String(cString: strerror(errno)))") }
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 {
            _ = fsync(dirFD)
            close(dirFD)
        }
    }
}
