import CSystemd
import EventModel

#if canImport(Glibc)
    import Glibc
#endif

/// Reads journal entries through libsystemd's sd-journal: the local system journal, a
/// namespace, a directory or a list of files. Each entry becomes an `Event` whose fields are the
/// entry's fields and whose position carries the entry's cursor, so a daemon can commit it and
/// resume after it.
///
/// Not thread-safe: one reader belongs to one loop (sd-journal objects must stay on one thread).
package final class JournalReader {
    package enum Location: Sendable, Equatable {
        /// The local system journal (and, as root, every user's).
        case system
        /// A journal namespace (`systemd-journald@NAME`).
        case namespace(String)
        case directory(String)
        case files([String])
    }

    /// Where reading starts when there is no committed cursor.
    package enum Start: Sendable, Equatable {
        /// Only entries written from now on.
        case tail
        /// Every entry the journal still has.
        case head
        /// Entries from this many microseconds before now.
        case since(Int64)
    }

    /// What happened to a committed cursor on open.
    package enum Resume: Sendable, Equatable {
        /// No cursor was given: reading starts at `Start`.
        case fresh
        /// The committed entry was found; reading continues after it.
        case continued
        /// The committed entry is gone (rotated or vacuumed away, or the journal was replaced):
        /// reading continues at the first entry after its place, and entries in between may be lost.
        case gap(cursor: String, reason: String)
    }

    package struct Failure: Error, CustomStringConvertible {
        package var description: String
    }

    /// A `Field=value` pair that entries must have; pairs of one field are alternatives,
    /// different fields all apply, and each group is an alternative to the other groups.
    package typealias Match = [(field: String, value: String)]

    package let location: Location
    /// The name findings cite as the source of journal events.
    package let sourceName: String
    private var journal: OpaquePointer?
    package private(set) var resume: Resume = .fresh
    /// Entries read since open.
    package private(set) var entries = 0
    /// Entries whose MESSAGE was missing at first read and present on a retry (a libsystemd race
    /// with the writer), and entries still without MESSAGE after the retries.
    package private(set) var retriedEntries = 0
    package private(set) var entriesWithoutMessage = 0
    /// The cursor of the last entry returned.
    package private(set) var cursor: String?
    /// The reader stands on an entry that poll must return before moving on.
    private var currentUnread = false
    /// Longest field value kept; longer values are cut by sd-journal.
    package let maxFieldBytes: Int

    package init(location: Location, matches: [Match] = [], maxFieldBytes: Int = 1 << 20) throws {
        self.location = location
        self.maxFieldBytes = maxFieldBytes
        var j: OpaquePointer?
        let r: Int32
        switch location {
        case .system:
            sourceName = "journal"
            r = sd_journal_open(&j, Int32(SD_JOURNAL_LOCAL_ONLY))
        case .namespace(let name):
            sourceName = "journal:\(name)"
            r = sd_journal_open_namespace(&j, name, Int32(SD_JOURNAL_LOCAL_ONLY))
        case .directory(let path):
            sourceName = "journal:\(path)"
            r = sd_journal_open_directory(&j, path, 0)
        case .files(let paths):
            sourceName = "journal:\(paths.joined(separator: ","))"
            r = Self.withCStrings(paths) { sd_journal_open_files(&j, $0, 0) }
        }
        guard r >= 0, let j else { throw Failure(description: "cannot open the journal (\(Self.describe(location))): \(Self.error(r))") }
        journal = j
        // The default threshold cuts fields at 64 KiB; the daemon's line limit applies instead.
        _ = sd_journal_set_data_threshold(j, maxFieldBytes)
        // Sets up inotify, so that sd_journal_process sees files that are added or rotated.
        let fd = sd_journal_get_fd(j)
        if fd < 0 { throw Failure(description: "cannot watch the journal (\(Self.describe(location))): \(Self.error(fd))") }
        try addMatches(matches)
    }

    deinit {
        if let journal { sd_journal_close(journal) }
    }

    private func addMatches(_ groups: [Match]) throws {
        guard let journal else { return }
        for (i, group) in groups.enumerated() {
            if i > 0 { _ = sd_journal_add_disjunction(journal) }
            for (field, value) in group {
                let pair = Array("\(field)=\(value)".utf8)
                let r = pair.withUnsafeBytes { sd_journal_add_match(journal, $0.baseAddress, $0.count) }
                if r < 0 { throw Failure(description: "journal match \(field)=\(value): \(Self.error(r))") }
            }
        }
    }

    /// True when at least one journal file is open (a missing or unreadable journal has none).
    package var hasFiles: Bool {
        guard let journal else { return false }
        var usage: UInt64 = 0
        return sd_journal_get_usage(journal, &usage) >= 0 && usage > 0
    }

    /// Positions the reader: after `cursor` when given (reporting in `resume` whether that entry
    /// still exists), else at `start`.
    /// `inclusive`: the entry at the cursor itself is read again (a failure that a session still
    /// held when the cursor was committed).
    package func seek(cursor: String?, inclusive: Bool = false, start: Start) throws {
        guard let journal else { return }
        if let cursor {
            let r = sd_journal_seek_cursor(journal, cursor)
            if r < 0 {
                resume = .gap(cursor: cursor, reason: "the committed cursor cannot be used (\(Self.error(r)))")
                try seek(start: .head)
                return
            }
            // The entry at the cursor, or the nearest one when it is gone.
            let n = sd_journal_next(journal)
            if n < 0 { throw Failure(description: "journal: \(Self.error(n))") }
            if n == 0 {
                // Nothing at or after the place: the cursor was the last entry (or the journal
                // lost everything after it). Either way reading continues from here.
                resume = .continued
                return
            }
            if sd_journal_test_cursor(journal, cursor) > 0 {
                resume = .continued
                currentUnread = inclusive
            } else {
                resume = .gap(cursor: cursor, reason: "the committed entry is no longer in the journal (rotated or vacuumed)")
                // The reader stands on an entry not read yet: the next poll returns it first.
                currentUnread = true
            }
            return
        }
        try seek(start: start)
    }

    private func seek(start: Start) throws {
        guard let journal else { return }
        switch start {
        case .head:
            let r = sd_journal_seek_head(journal)
            if r < 0 { throw Failure(description: "journal seek: \(Self.error(r))") }
        case .since(let usec):
            let now = Int64(Self.realtimeMicroseconds())
            let r = sd_journal_seek_realtime_usec(journal, UInt64(max(0, now - usec)))
            if r < 0 { throw Failure(description: "journal seek: \(Self.error(r))") }
        case .tail:
            let r = sd_journal_seek_tail(journal)
            if r < 0 { throw Failure(description: "journal seek: \(Self.error(r))") }
            // seek_tail points past the end; stepping back onto the last entry makes the next
            // read return the first new entry. When no entry is there yet (an empty journal, or
            // none that the matches accept), stepping back fails and later entries would be
            // skipped from the tail position: start from the head instead.
            if sd_journal_previous(journal) <= 0 {
                _ = sd_journal_seek_head(journal)
            }
        }
    }

    /// Lets sd-journal notice appended, added and rotated files. Cheap; call once per loop.
    package func refresh() {
        guard let journal else { return }
        _ = sd_journal_process(journal)
    }

    /// Waits up to `microseconds` for the journal to change; returns true if it did.
    package func wait(microseconds: UInt64) -> Bool {
        guard let journal else { return false }
        let r = sd_journal_wait(journal, microseconds)
        return r == Int32(SD_JOURNAL_APPEND) || r == Int32(SD_JOURNAL_INVALIDATE)
    }

    /// Reads up to `maxEntries` entries and hands each to `body`. Returns how many were read.
    package func poll(maxEntries: Int, _ body: (inout Event) -> Void) throws -> Int {
        guard let journal else { return 0 }
        var read = 0
        while read < maxEntries {
            let r = currentUnread ? 1 : sd_journal_next(journal)
            currentUnread = false
            if r < 0 {
                // A file vanished under us (vacuum) or was replaced: refresh and try again next poll.
                if r == -ENOENT || r == -EBADMSG || r == -EADDRNOTAVAIL {
                    refresh()
                    break
                }
                throw Failure(description: "journal: \(Self.error(r))")
            }
            if r == 0 { break }
            read += 1
            entries += 1
            var event = readEntry(journal)
            body(&event)
        }
        return read
    }

    private func readEntry(_ journal: OpaquePointer) -> Event {
        var cursorPointer: UnsafeMutablePointer<CChar>?
        var cursor: String?
        if sd_journal_get_cursor(journal, &cursorPointer) >= 0, let cursorPointer {
            cursor = String(cString: cursorPointer)
            free(cursorPointer)
        }
        self.cursor = cursor
        var usec: UInt64 = 0
        let time: Int64? = sd_journal_get_realtime_usec(journal, &usec) >= 0 ? Int64(usec) : nil
        // The cursor alone identifies the entry (and so the uid of a finding it starts); the
        // line is only this run's entry count, shown in evidence.
        let position = SourcePosition(source: sourceName, line: entries, offset: 0, cursor: cursor)
        var fields = Self.enumerate(journal)
        // A follower racing the writer can see a field missing for a moment (systemd#40263):
        // an entry without MESSAGE is read again before it is taken as having none.
        if !fields.contains(FieldName.message) {
            for _ in 0..<3 {
                let again = Self.enumerate(journal)
                if again.contains(FieldName.message) {
                    fields = again
                    retriedEntries += 1
                    break
                }
            }
            if !fields.contains(FieldName.message) { entriesWithoutMessage += 1 }
        }
        // As `scan` of an export does: the writer's own time when it sent one, else the journal's.
        let sent = fields.first(FieldName.sourceRealtimeTimestamp).flatMap { Int64(String(decoding: $0, as: UTF8.self)) }
        return Event(time: sent ?? time, position: position, fields: fields)
    }

    /// One pass over the entry's data (cheaper than a get_data call per field).
    private static func enumerate(_ journal: OpaquePointer) -> EventFields {
        var fields = EventFields(capacity: 512)
        sd_journal_restart_data(journal)
        var data: UnsafeRawPointer?
        var length = 0
        while sd_journal_enumerate_data(journal, &data, &length) > 0 {
            guard let data else { continue }
            let bytes = UnsafeRawBufferPointer(start: data, count: length).bindMemory(to: UInt8.self)
            guard let eq = bytes.firstIndex(of: UInt8(ascii: "=")), eq > 0 else { continue }
            let name = String(decoding: UnsafeBufferPointer(rebasing: bytes[..<eq]), as: UTF8.self)
            fields.add(name, bytes: UnsafeBufferPointer(rebasing: bytes[(eq + 1)...]))
        }
        return fields
    }

    package static func describe(_ location: Location) -> String {
        switch location {
        case .system: "system journal"
        case .namespace(let n): "namespace \(n)"
        case .directory(let d): d
        case .files(let f): f.joined(separator: ", ")
        }
    }

    static func error(_ r: Int32) -> String { String(cString: strerror(-r)) }

    private static func realtimeMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let owned = strings.map { strdup($0) }
        defer { owned.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = owned.map { UnsafePointer($0) }
        pointers.append(nil)
        return pointers.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }
}
