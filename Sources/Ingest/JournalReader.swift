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
    /// The cursor of the last entry returned (sd-journal's own, fetched once per poll).
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
        scratch.deallocate()
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
            } else if let here = Self.fullCursor(journal) {
                // Committed even before any new entry arrives: a restart resumes here instead of
                // at a later tail, so entries written while the daemon was down are read.
                cursor = here
            }
        }
    }

    /// Lets sd-journal notice appended, added and rotated files. Cheap; call once per loop.
    package func refresh() {
        guard let journal else { return }
        _ = sd_journal_process(journal)
    }

    /// The descriptor that becomes readable when the journal changes (for poll(2) with other
    /// descriptors; `refresh` afterwards), and how long sd-journal wants a wait to last at most.
    package var pollDescriptor: (fd: Int32, events: Int16, timeoutMicroseconds: UInt64)? {
        guard let journal else { return nil }
        let fd = sd_journal_get_fd(journal)
        let events = sd_journal_get_events(journal)
        guard fd >= 0, events >= 0 else { return nil }
        var timeout: UInt64 = .max
        _ = sd_journal_get_timeout(journal, &timeout)
        return (fd, Int16(events), timeout)
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
            // The fields' buffers serve the next entry, unless `body` kept the event.
            swap(&spare, &event.fields)
        }
        // The full cursor (with sequence number and hash) for the commit, once per batch: the
        // reader still stands on the last entry it returned.
        if read > 0 { cursor = Self.fullCursor(journal) ?? stamps(journal).cursor }
        return read
    }

    /// sd-journal's own cursor of the current entry.
    private static func fullCursor(_ journal: OpaquePointer) -> String? {
        var pointer: UnsafeMutablePointer<CChar>?
        guard sd_journal_get_cursor(journal, &pointer) >= 0, let pointer else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// The current entry's stamps.
    private func stamps(_ journal: OpaquePointer) -> JournalStamps {
        var usec: UInt64 = 0
        let hasRealtime = sd_journal_get_realtime_usec(journal, &usec) >= 0
        var monotonic: UInt64 = 0
        var boot = sd_id128_t()
        var entryBoot: BootID?
        if sd_journal_get_monotonic_usec(journal, &monotonic, &boot) >= 0 {
            let id = withUnsafeBytes(of: boot.bytes) {
                ($0.loadUnaligned(as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            }
            if let current = currentBoot, current.bytes == id {
                entryBoot = current
            } else {
                entryBoot = BootID(id)
                currentBoot = entryBoot
            }
        }
        return JournalStamps(boot: entryBoot, monotonic: monotonic, realtime: hasRealtime ? usec : nil)
    }

    /// The boot of the last entry read, shared by the stamps of its boot's entries.
    private var currentBoot: BootID?

    private func readEntry(_ journal: OpaquePointer) -> Event {
        let stamps = stamps(journal)
        var entry = enumerate(journal)
        // A follower racing the writer can see a field missing for a moment (systemd#40263):
        // an entry without MESSAGE is read again before it is taken as having none.
        if !entry.hasMessage {
            for _ in 0..<3 {
                let again = enumerate(journal)
                if again.hasMessage {
                    entry = again
                    retriedEntries += 1
                    break
                }
            }
            if !entry.hasMessage { entriesWithoutMessage += 1 }
        }
        // Each entry's position carries a cursor of its boot, monotonic and realtime stamps:
        // `journalctl --cursor` and sd_journal_seek_cursor accept it, it identifies the entry
        // (journald stamps each entry as it receives it), so finding uids repeat after a replay,
        // and it costs a fraction of sd_journal_get_cursor's (which the commit uses, once per
        // batch): the stamps are kept as numbers, written out only for events that need a cursor.
        // The line is this run's entry count, for ordering and evidence.
        let position = SourcePosition(source: sourceName, line: entries, offset: 0, stamps: stamps)
        // As `scan` of an export does: the writer's own time when it sent one, else the journal's.
        return Event(time: entry.sentTime ?? stamps.realtime.flatMap { Int64(exactly: $0) }, position: position, fields: entry.fields)
    }

    /// Field names seen so far, so that each entry reuses their strings instead of decoding them.
    private var names = NameTable()
    /// The last entry's fields, emptied and refilled by the next.
    private var spare = EventFields(capacity: 1024, fields: 24)

    /// One pass over the entry's data (cheaper than a get_data call per field).
    private func enumerate(_ journal: OpaquePointer) -> (fields: EventFields, hasMessage: Bool, sentTime: Int64?) {
        // Taken out of the object for the loop: no exclusivity check per field.
        var names = NameTable(size: 0)
        swap(&names, &self.names)
        defer { swap(&names, &self.names) }
        var fields = EventFields()
        swap(&fields, &spare)
        // The last entry's field list is overwritten in place (entries of one journal mostly
        // have as many fields): no emptying, element by element, of a list about to be refilled.
        var list: [EventFields.Field] = []
        fields.exchangeFields(&list)
        fields.removeAll()
        var hasMessage = false
        var sentTime: Int64?
        sd_journal_restart_data(journal)
        var data: UnsafeRawPointer?
        var length = 0
        // Values are gathered in `scratch` and join the fields' buffer in one append at the end
        // (an append per value costs more than the copy itself); the ranges are where they land.
        let base = fields.storage.count
        var used = 0
        var count = 0
        while sd_journal_enumerate_data(journal, &data, &length) > 0 {
            guard let data else { continue }
            let bytes = UnsafeRawBufferPointer(start: data, count: length)
            guard let (slot, known, eq) = names.find(bytes) else { continue }
            let value = UnsafeRawBufferPointer(rebasing: bytes[(eq + 1)...])
            if used + value.count > scratch.count { growScratch(to: used + value.count) }
            if let source = value.baseAddress { (scratch.baseAddress! + used).copyMemory(from: source, byteCount: value.count) }
            let range = (base + used)..<(base + used + value.count)
            if count < list.count, names.holds(slot, list[count].name) {
                // The last entry had this field here too: only its value moved.
                list[count].range = range
            } else {
                let field = EventFields.Field(name: names.name(slot, of: bytes, eq: eq), range: range)
                if count < list.count { list[count] = field } else { list.append(field) }
            }
            count += 1
            used += value.count
            switch known {
            case .message: hasMessage = true
            case .sourceTime: sentTime = Self.decimal(value)
            case .other: break
            }
        }
        if count < list.count { list.removeSubrange(count...) }
        fields.append(backing: UnsafeRawBufferPointer(rebasing: scratch[..<used]))
        fields.exchangeFields(&list)
        return (fields, hasMessage, sentTime)
    }

    /// The values of the entry being read (see `enumerate`); it grows with the largest entry.
    private var scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 16_384, alignment: 8)

    private func growScratch(to size: Int) {
        let grown = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 2 * scratch.count), alignment: 8)
        grown.copyMemory(from: UnsafeRawBufferPointer(scratch))
        scratch.deallocate()
        scratch = grown
    }

    static func decimal(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var v: Int64 = 0
        for b in bytes {
            guard b >= 48, b <= 57 else { return nil }
            v = v * 10 + Int64(b - 48)
        }
        return v
    }

    /// Interned field names: an open-addressing table keyed by a hash of the name's bytes. A slot
    /// (hash, length, offset of the name's bytes) is 16 bytes, so a probe reads one cache line; the
    /// table starts small and doubles up to `maxSize` (the few dozen names a host writes fit the
    /// first size, where libsystemd's mapped windows push the least out of the cache).
    package struct NameTable {
        package enum Known { case message, sourceTime, other }
        private struct Slot {
            var hash: UInt64 = 0
            var offset: Int32 = 0
            /// -1: empty.
            var length: Int32 = -1
        }
        private var slots: [Slot]
        private var strings: [String]
        private var kinds: [Known]
        private var bytes: [UInt8] = []
        private var used = 0
        /// Address of a field libsystemd returned → its name's slot (see `find`).
        private var recent: [(address: UInt, slot: Int32)]
        package static let maxSize = 1024

        /// Names held (at most half of `maxSize`).
        package var count: Int { used }

        /// `size`: a power of two; 0 is a placeholder that holds nothing and allocates nothing.
        package init(size: Int = 64) {
            recent = size > 0 ? Array(repeating: (0, 0), count: 256) : []
            slots = Array(repeating: Slot(), count: size)
            strings = Array(repeating: "", count: size)
            kinds = Array(repeating: .other, count: size)
        }

        @inline(__always)
        static func hash(_ name: UnsafeRawBufferPointer) -> UInt64 {
            // Length and the first and last eight bytes tell field names apart; memcmp confirms.
            var h = UInt64(name.count) &* 0x9E37_79B9_7F4A_7C15
            if name.count >= 8 {
                h ^= name.loadUnaligned(as: UInt64.self)
                h = (h ^ (h >> 29)) &* 0xBF58_476D_1CE4_E5B9
                h ^= name.loadUnaligned(fromByteOffset: name.count - 8, as: UInt64.self)
            } else {
                for b in name { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
            }
            return (h ^ (h >> 32)) &* 0x94D0_49BB_1331_11EB
        }

        /// The name of slot `slot` (as `find` gave it; -1: the name in `data`, not held).
        @inline(__always)
        package func name(_ slot: Int, of data: UnsafeRawBufferPointer, eq: Int) -> String {
            slot >= 0 ? strings[slot] : String(decoding: data[..<eq], as: UTF8.self)
        }

        /// True when `name` is the very string slot `slot` holds (same storage, or the same
        /// inline bytes), told without retaining either: a reader refilling last entry's field
        /// list keeps a name that is already in place.
        @inline(__always)
        package func holds(_ slot: Int, _ name: String) -> Bool {
            slot >= 0 && unsafeBitCast(strings[slot], to: (UInt64, UInt64).self) == unsafeBitCast(name, to: (UInt64, UInt64).self)
        }

        /// The slot of a `NAME=value` field's name (-1 when the table is full and the name not
        /// held; `name(_:of:eq:)` gives the string either way), its kind and the index of `=`;
        /// nil without a name.
        ///
        /// A journal file stores each distinct field once, and libsystemd hands the same object
        /// out at the same address while its window stays mapped: a small cache from address to
        /// slot skips the search for `=` and the hash. The name's bytes are still compared, so a
        /// window mapped anew at that address cannot mislabel a field.
        @inline(__always)
        package mutating func find(_ data: UnsafeRawBufferPointer) -> (slot: Int, known: Known, eq: Int)? {
            guard let base = data.baseAddress else { return nil }
            let address = UInt(bitPattern: base)
            let c = Int(truncatingIfNeeded: (UInt64(address) &* 0x9E37_79B9_7F4A_7C15) >> 56)
            if !recent.isEmpty, recent[c].address == address {
                let slot = Int(recent[c].slot)
                let n = Int(slots[slot].length)
                if n < data.count, data[n] == UInt8(ascii: "="),
                    bytes.withUnsafeBytes({ memcmp($0.baseAddress! + Int(slots[slot].offset), base, n) == 0 })
                {
                    return (slot, kinds[slot], n)
                }
            }
            guard let found = memchr(base, Int32(UInt8(ascii: "=")), data.count) else { return nil }
            let eq = base.distance(to: UnsafeRawPointer(found))
            guard eq > 0 else { return nil }
            let (known, slot) = lookup(UnsafeRawBufferPointer(rebasing: data[..<eq]))
            if slot >= 0, !recent.isEmpty { recent[c] = (address, Int32(slot)) }
            return (slot, known, eq)
        }

        /// The name's kind and slot (-1 when not held: the table is full, or the placeholder).
        @inline(__always)
        private mutating func lookup(_ name: UnsafeRawBufferPointer) -> (Known, Int) {
            // The placeholder table (size 0) is never asked.
            guard !slots.isEmpty else { return (Self.kind(String(decoding: name, as: UTF8.self)), -1) }
            let h = Self.hash(name)
            var i = probe(name, hash: h)
            if slots[i].length >= 0 { return (kinds[i], i) }
            let string = String(decoding: name, as: UTF8.self)
            let known = Self.kind(string)
            // Bounded: a writer inventing field names cannot grow the table past `maxSize`, only miss it.
            if used + 1 > slots.count / 2 {
                guard slots.count < Self.maxSize else { return (known, -1) }
                grow()
                // Slots moved: the addresses remembered for them are forgotten.
                for k in recent.indices { recent[k] = (0, 0) }
                i = probe(name, hash: h)
            }
            slots[i] = Slot(hash: h, offset: Int32(bytes.count), length: Int32(name.count))
            bytes.append(contentsOf: name)
            strings[i] = string
            kinds[i] = known
            used += 1
            return (known, i)
        }

        /// The slot holding `name`, else the empty slot where it belongs.
        @inline(__always)
        private func probe(_ name: UnsafeRawBufferPointer, hash h: UInt64) -> Int {
            let mask = slots.count - 1
            var i = Int(truncatingIfNeeded: h) & mask
            while true {
                let slot = slots[i]
                if slot.length < 0 { return i }
                if slot.hash == h, Int(slot.length) == name.count,
                    bytes.withUnsafeBytes({ memcmp($0.baseAddress! + Int(slot.offset), name.baseAddress!, name.count) == 0 })
                {
                    return i
                }
                i = (i + 1) & mask
            }
        }

        private mutating func grow() {
            let old = (slots, strings, kinds)
            slots = Array(repeating: Slot(), count: old.0.count * 2)
            strings = Array(repeating: "", count: slots.count)
            kinds = Array(repeating: .other, count: slots.count)
            let mask = slots.count - 1
            for k in old.0.indices where old.0[k].length >= 0 {
                var i = Int(truncatingIfNeeded: old.0[k].hash) & mask
                while slots[i].length >= 0 { i = (i + 1) & mask }
                slots[i] = old.0[k]
                strings[i] = old.1[k]
                kinds[i] = old.2[k]
            }
        }

        static func kind(_ name: String) -> Known {
            name == FieldName.message ? .message : name == FieldName.sourceRealtimeTimestamp ? .sourceTime : .other
        }
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
