import EventModel
import Foundation
import Ingest
import TestSupport
import Testing

/// sd-journal against journal files that systemd-journal-remote writes.
@Suite("Journal reader", .enabled(if: JournalWriter.available, "needs systemd-journal-remote (scripts/test.sh installs it)"))
struct JournalReaderTests {
    final class Scratch {
        let dir: String
        init() throws {
            dir = NSTemporaryDirectory() + "logtriage-journal-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(atPath: dir) }
        var file: String { dir + "/remote.journal" }
    }

    static func messages(_ reader: JournalReader) throws -> [String] {
        var out: [String] = []
        _ = try reader.poll(maxEntries: 100_000) { out.append($0.string(FieldName.message) ?? "<none>") }
        return out
    }

    /// A reader of the journal in `dir` from its first entry, and every event it reads (kept whole).
    static func readAll(_ dir: String) throws -> (JournalReader, [Event]) {
        let reader = try JournalReader(location: .directory(dir))
        try reader.seek(cursor: nil, start: .head)
        var events: [Event] = []
        _ = try reader.poll(maxEntries: 100_000) { events.append($0) }
        return (reader, events)
    }

    @Test("every field of an entry arrives, binary-safe values and event time included; positions carry the cursor")
    func fields() throws {
        let s = try Scratch()
        try JournalWriter.write(
            [
                JournalWriter.export(
                    [("MESSAGE", "line one\nline two"), ("SYSLOG_IDENTIFIER", "app"), ("_PID", "7"), ("EXTRA", "x=y")],
                    time: 1_700_000_000_000_000),
                JournalWriter.export([("MESSAGE", "second")], time: 1_700_000_000_000_001),
            ], to: s.file)
        let (reader, events) = try Self.readAll(s.dir)
        try #require(events.count == 2)
        #expect(events[0].string("MESSAGE") == "line one\nline two")
        #expect(events[0].string("EXTRA") == "x=y")
        #expect(events[0].string("_PID") == "7")
        #expect(events[0].string("_BOOT_ID") == JournalWriter.bootID)
        #expect(events[0].time == 1_700_000_000_000_000)
        #expect(events[0].position.source == "journal:\(s.dir)")
        // Each event's cursor names its boot and stamps (journalctl --cursor takes it); the
        // reader's own cursor, for commits, is the full one of the last entry.
        #expect(events[0].position.cursor == "b=\(JournalWriter.bootID);m=1;t=\(String(1_700_000_000_000_000, radix: 16))")
        #expect(events[1].position.cursor != events[0].position.cursor)
        #expect(reader.cursor?.hasPrefix("s=") == true && reader.cursor?.contains(";i=2;") == true, "\(reader.cursor ?? "")")
    }

    @Test("values larger than the reader's buffers arrive whole, and events kept by the consumer keep their own fields")
    func largeValuesAndKeptEvents() throws {
        let s = try Scratch()
        let big = String(repeating: "0123456789abcdef", count: 8192)
        let other = String(repeating: "z", count: 50_000)
        try JournalWriter.write(
            [
                JournalWriter.export([("MESSAGE", "small one"), ("SYSLOG_IDENTIFIER", "app")]),
                JournalWriter.export([("MESSAGE", big), ("SYSLOG_IDENTIFIER", "app"), ("BLOB", other)]),
                JournalWriter.export([("MESSAGE", "small two"), ("SYSLOG_IDENTIFIER", "app")]),
            ], to: s.file)
        let (_, events) = try Self.readAll(s.dir)
        try #require(events.count == 3)
        #expect(events[0].string("MESSAGE") == "small one")
        #expect(events[1].string("MESSAGE") == big)
        #expect(events[1].string("BLOB") == other)
        #expect(events[1].string("SYSLOG_IDENTIFIER") == "app")
        #expect(events[2].string("MESSAGE") == "small two")
        #expect(events[2].string("BLOB") == nil)
    }

    @Test("resume after a cursor yields the following entries; an inclusive resume repeats the cursor's entry")
    func resume() throws {
        let s = try Scratch()
        try JournalWriter.write((1...5).map { JournalWriter.sshd("entry \($0)") }, to: s.file)
        let first = try JournalReader(location: .directory(s.dir))
        try first.seek(cursor: nil, start: .head)
        var cursors: [String] = []
        _ = try first.poll(maxEntries: 2) { cursors.append($0.position.cursor ?? "") }
        #expect(cursors.count == 2)

        let again = try JournalReader(location: .directory(s.dir))
        try again.seek(cursor: cursors[1], start: .tail)
        #expect(again.resume == .continued)
        #expect(try Self.messages(again) == ["entry 3", "entry 4", "entry 5"])

        let inclusive = try JournalReader(location: .directory(s.dir))
        try inclusive.seek(cursor: cursors[1], inclusive: true, start: .tail)
        #expect(try Self.messages(inclusive) == ["entry 2", "entry 3", "entry 4", "entry 5"])
    }

    @Test("a cursor whose entry was vacuumed away is a gap; reading continues with what is there")
    func vacuumedCursor() throws {
        let s = try Scratch()
        try JournalWriter.write((1...3).map { JournalWriter.sshd("old \($0)") }, to: s.file)
        let reader = try JournalReader(location: .directory(s.dir))
        try reader.seek(cursor: nil, start: .head)
        _ = try Self.messages(reader)
        let cursor = try #require(reader.cursor)
        // Vacuum: the file is deleted; new entries go to a new file.
        try FileManager.default.removeItem(atPath: s.file)
        try JournalWriter.write((1...2).map { JournalWriter.sshd("new \($0)") }, to: s.dir + "/next.journal")
        let resumed = try JournalReader(location: .directory(s.dir))
        try resumed.seek(cursor: cursor, start: .tail)
        guard case .gap(let c, _) = resumed.resume else {
            Issue.record("expected a gap, got \(resumed.resume)")
            return
        }
        #expect(c == cursor)
        #expect(try Self.messages(resumed) == ["new 1", "new 2"])

        let bogus = try JournalReader(location: .directory(s.dir))
        try bogus.seek(cursor: "not a cursor", start: .tail)
        if case .gap = bogus.resume {} else { Issue.record("a malformed cursor must be reported as a gap, got \(bogus.resume)") }
        #expect(try Self.messages(bogus) == ["new 1", "new 2"])
    }

    @Test("tail of an empty journal, or of one where no entry passes the matches, still sees every later entry")
    func tailEdge() throws {
        let s = try Scratch()
        // Entries exist, but none passes the match: seeking to the tail and stepping back finds
        // nothing, and reading from that tail position would skip what comes next.
        try JournalWriter.write([JournalWriter.export([("MESSAGE", "cron noise"), ("SYSLOG_IDENTIFIER", "CRON")])], to: s.file)
        let live = try JournalWriter.Live(file: s.file)
        defer { live.close() }
        let reader = try JournalReader(location: .directory(s.dir), matches: [[("SYSLOG_IDENTIFIER", "sshd")]])
        try reader.seek(cursor: nil, start: .tail)
        #expect(try Self.messages(reader) == [])
        for i in 1...20 { try live.append(JournalWriter.sshd("new \(i)")) }
        var seen: [String] = []
        let deadline = Date().addingTimeInterval(5)
        while seen.count < 20, Date() < deadline {
            reader.refresh()
            seen += try Self.messages(reader)
            if seen.count < 20 { usleep(20_000) }
        }
        #expect(seen == (1...20).map { "new \($0)" })
    }

    @Test("tail skips what was there; since reads back that far; matches keep other entries out")
    func startsAndMatches() throws {
        let s = try Scratch()
        let now = JournalWriter.now()
        try JournalWriter.write(
            [
                JournalWriter.sshd("an hour ago", time: now - 3_600_000_000),
                JournalWriter.export([("MESSAGE", "a minute ago, cron"), ("SYSLOG_IDENTIFIER", "CRON")], time: now - 60_000_000),
                JournalWriter.sshd("a minute ago", time: now - 60_000_000 + 1),
            ], to: s.file)
        let tail = try JournalReader(location: .directory(s.dir))
        try tail.seek(cursor: nil, start: .tail)
        #expect(try Self.messages(tail) == [])
        let tailCursor = try #require(tail.cursor)

        let since = try JournalReader(location: .directory(s.dir))
        try since.seek(cursor: nil, start: .since(600_000_000))
        #expect(try Self.messages(since) == ["a minute ago, cron", "a minute ago"])

        let matched = try JournalReader(
            location: .directory(s.dir), matches: [[("SYSLOG_IDENTIFIER", "sshd")], [("SYSLOG_IDENTIFIER", "su"), ("PRIORITY", "5")]])
        try matched.seek(cursor: nil, start: .head)
        #expect(try Self.messages(matched) == ["an hour ago", "a minute ago"])

        // The tail position is a cursor already: a daemon stopped before anything new arrived
        // resumes there and reads what was written while it was down.
        try JournalWriter.write([JournalWriter.sshd("while down")], to: s.file)
        let resumed = try JournalReader(location: .directory(s.dir))
        try resumed.seek(cursor: tailCursor, start: .tail)
        #expect(try Self.messages(resumed) == ["while down"])
    }

    @Test("journal files given one by one; a missing directory is a clear error")
    func filesAndErrors() throws {
        let s = try Scratch()
        try JournalWriter.write([JournalWriter.sshd("from a file")], to: s.file)
        let reader = try JournalReader(location: .files([s.file]))
        try reader.seek(cursor: nil, start: .head)
        #expect(try Self.messages(reader) == ["from a file"])
        #expect(reader.hasFiles)
        #expect(throws: JournalReader.Failure.self) { try JournalReader(location: .directory(s.dir + "/absent")) }
    }

    @Test("field names are interned up to a bound: a writer inventing names is read right but cannot grow the table")
    func nameTableIsBounded() {
        var table = JournalReader.NameTable()
        func look(_ name: String) -> (String, JournalReader.NameTable.Known) {
            var bytes = Array((name + "=value").utf8)
            return bytes.withUnsafeMutableBytes { raw in
                let data = UnsafeRawBufferPointer(raw)
                guard let (slot, known, eq) = table.find(data) else { return ("", .other) }
                #expect(eq == name.utf8.count)
                return (table.name(slot, of: data, eq: eq), known)
            }
        }
        #expect(look("MESSAGE") == ("MESSAGE", .message))
        #expect(look("_SOURCE_REALTIME_TIMESTAMP") == ("_SOURCE_REALTIME_TIMESTAMP", .sourceTime))
        for n in 0..<5000 {
            let name = "FIELD_\(n)_" + String(repeating: "X", count: n % 40)
            #expect(look(name).0 == name)
        }
        #expect(table.count == JournalReader.NameTable.maxSize / 2)
        // The names interned first are still found, after the table grew and filled.
        #expect(look("MESSAGE") == ("MESSAGE", .message))
        #expect(look("FIELD_7_XXXXXXX").0 == "FIELD_7_XXXXXXX")
    }
}
