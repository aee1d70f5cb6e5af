import EventModel
import Foundation
import Ingest
import TestSupport
import Testing

struct SyslogParserTests {
    struct Case: Sendable, CustomStringConvertible {
        var line: String
        var fields: [String: String]
        var time: String?
        var description: String { line }
    }

    static let cases: [Case] = [
        Case(
            line: "Feb 25 14:34:10 belka sshd[31602]: Failed password for root from 1.2.3.4 port 22 ssh2",
            fields: [
                "_HOSTNAME": "belka", "SYSLOG_IDENTIFIER": "sshd", "_PID": "31602",
                "MESSAGE": "Failed password for root from 1.2.3.4 port 22 ssh2",
            ],
            time: "2024-02-25T14:34:10.000Z"),
        Case(
            line: "Jan  5 01:31:41 www sshd[1643]: ROOT LOGIN REFUSED FROM 1.2.3.4",
            fields: ["_HOSTNAME": "www", "SYSLOG_IDENTIFIER": "sshd", "MESSAGE": "ROOT LOGIN REFUSED FROM 1.2.3.4"],
            time: "2024-01-05T01:31:41.000Z"),
        Case(
            line: "<38>Feb  5 10:00:00 host su: FAILED SU (to root) bob on pts/0",
            fields: [
                "PRIORITY": "6", "SYSLOG_FACILITY": "4", "_HOSTNAME": "host", "SYSLOG_IDENTIFIER": "su",
                "MESSAGE": "FAILED SU (to root) bob on pts/0",
            ], time: nil),
        Case(
            line: "Mar  3 00:17:22 [sshd]: User root from 211.188.220.49 not allowed because not listed in AllowUsers",
            fields: ["SYSLOG_IDENTIFIER": "sshd", "MESSAGE": "User root from 211.188.220.49 not allowed because not listed in AllowUsers"],
            time: nil),
        Case(
            line: "Feb  7 15:10:42 example pure-ftpd: (pam_unix) authentication failure; rhost=1.2.3.4",
            fields: [
                "_HOSTNAME": "example", "SYSLOG_IDENTIFIER": "pure-ftpd", "MESSAGE": "(pam_unix) authentication failure; rhost=1.2.3.4",
            ], time: nil),
        Case(
            line: "Nov 25 17:12:13 webmail pop(pam_unix)[4920]: authentication failure",
            fields: ["SYSLOG_IDENTIFIER": "pop(pam_unix)", "_PID": "4920"], time: nil),
        Case(
            line: "2024-03-14T12:00:00.123456+01:00 web1 sshd[9]: Accepted publickey for a from 1.2.3.4 port 2 ssh2",
            fields: ["_HOSTNAME": "web1", "SYSLOG_IDENTIFIER": "sshd", "_PID": "9"], time: "2024-03-14T11:00:00.123Z"),
        Case(
            line: "srv sshd[123]: Connection closed by 1.2.3.4 port 22 [preauth]",
            fields: ["_HOSTNAME": "srv", "SYSLOG_IDENTIFIER": "sshd", "MESSAGE": "Connection closed by 1.2.3.4 port 22 [preauth]"],
            time: nil),
        Case(
            line: "just some text without a header",
            fields: ["MESSAGE": "just some text without a header"], time: nil),
        Case(
            line: "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{FEFF}'su root' failed for lonvick on /dev/pts/8",
            fields: [
                "PRIORITY": "2", "SYSLOG_FACILITY": "4", "_HOSTNAME": "mymachine.example.com", "SYSLOG_IDENTIFIER": "su",
                "SYSLOG_MSGID": "ID47",
                "MESSAGE": "'su root' failed for lonvick on /dev/pts/8",
            ], time: "2003-10-11T22:14:15.003Z"),
        Case(
            line:
                #"<165>1 2003-10-11T22:14:15.003Z host evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="App\"x\]"] An application event"#,
            fields: [
                "SYSLOG_IDENTIFIER": "evntslog", "exampleSDID@32473.iut": "3", "exampleSDID@32473.eventSource": "App\"x]",
                "MESSAGE": "An application event",
            ], time: nil),
        Case(line: "<13>1 - - - - - -", fields: ["PRIORITY": "5"], time: nil),
    ]

    @Test(arguments: cases)
    func parsesFields(_ c: Case) {
        let event = Fixtures.syslog(c.line)
        for (k, v) in c.fields {
            #expect(event.string(k) == v, "field \(k)")
        }
        if let t = c.time {
            #expect(event.time.map(CivilTime.rfc3339) == t)
        }
    }

    @Test func repeatedMessageCountsAsN() {
        let e = Fixtures.syslog(
            "Nov 27 03:12:15 web1 sshd[2213]: message repeated 3 times: [ Failed password for root from 1.2.3.4 port 5 ssh2]")
        #expect(e.repeatCount == 3)
        #expect(e.string("MESSAGE") == "Failed password for root from 1.2.3.4 port 5 ssh2")
    }

    @Test func yearIsInferredFromReference() {
        // A December stamp read in January belongs to the previous year.
        let jan = CivilTime.micros(year: 2025, month: 1, day: 3, hour: 0, minute: 0, second: 0)
        var parser = SyslogParser(referenceTime: jan, zone: .utc)
        var bytes = Array("Dec 31 23:59:59 h x: y".utf8)
        let e = bytes.withUnsafeMutableBufferPointer {
            parser.parse(UnsafeBufferPointer($0), position: .init(source: "t", line: 1, offset: 0)).event
        }
        #expect(e.time.map(CivilTime.rfc3339) == "2024-12-31T23:59:59.000Z")
    }

    @Test func aRepeatedStampIsReadAsItStands() {
        // The parser keeps the last stamp it read: a line that repeats its bytes but goes on
        // with a fraction, or that comes after the year changed, must not take the kept time.
        let jan = CivilTime.micros(year: 2025, month: 1, day: 3, hour: 0, minute: 0, second: 0)
        var parser = SyslogParser(referenceTime: jan, zone: .utc)
        func time(_ line: String) -> String? {
            var bytes = Array(line.utf8)
            return bytes.withUnsafeMutableBufferPointer {
                parser.parse(UnsafeBufferPointer($0), position: .init(source: "t", line: 1, offset: 0)).event.time
            }.map(CivilTime.rfc3339)
        }
        #expect(time("Jan  2 10:00:00 h x: y") == "2025-01-02T10:00:00.000Z")
        #expect(time("Jan  2 10:00:00 h x: z") == "2025-01-02T10:00:00.000Z")
        #expect(time("Jan  2 10:00:00.250 h x: y") == "2025-01-02T10:00:00.250Z")
        #expect(time("Jan  2 10:00:00 h x: y") == "2025-01-02T10:00:00.000Z")
        #expect(time("Jan  2 10:00:01 h x: y") == "2025-01-02T10:00:01.000Z")
        #expect(time("Jan 2 10:00:01 h x: y") == "2025-01-02T10:00:01.000Z")
        #expect(time("Jan 2 10:00:01 h2 x: y") == "2025-01-02T10:00:01.000Z")
        parser.year = 2020
        #expect(time("Jan 2 10:00:01 h2 x: y") == "2020-01-02T10:00:01.000Z")
    }
}

struct EventReaderTests {
    /// Fields, time, position and repeat count, for comparing events.
    static func summary(_ e: Event) -> String {
        var parts: [String] = []
        e.fields.forEach { name, value in
            // The length and the start of each value: enough to tell lines apart, short in a report.
            parts.append("\(name)=\(value.count):\(String(decoding: value.prefix(32), as: UTF8.self))")
            return true
        }
        return "\(e.time ?? -1) \(e.position.description)@\(e.position.offset) x\(e.repeatCount) " + parts.joined(separator: " ")
    }

    @Test("one event reused for every line: the events kept are those read one by one")
    func reusedEventLeavesKeptCopiesAlone() throws {
        let long = String(repeating: "x", count: 70_000)
        let text = [
            "<38>Nov  3 10:00:00 web1 sshd[7]: Failed password for root from 192.0.2.1 port 22 ssh2",
            "Nov  3 10:00:01 web1 sshd[7]: message repeated 3 times: [ Failed password for root from 192.0.2.1 port 22 ssh2]",
            "",
            "Nov  3 10:00:02 web1 kernel: \(long)",
            "no header at all",
            #"{"MESSAGE":"from json","SYSLOG_IDENTIFIER":"app","__REALTIME_TIMESTAMP":"1700000000000000"}"#,
            "type=USER_AUTH msg=audit(1700000000.123:42): pid=1 uid=0 res=failed",
            "2026-11-03T10:00:03.5+00:00 db1 cron[9]: short",
            "Nov  3 10:00:04 db1 su: x",
        ].joined(separator: "\n")
        let path = try Fixtures.temporaryFile(Array(text.utf8))
        let (expected, _) = try Fixtures.readAll(path)
        var reader = try EventReader(path: path, options: ReaderOptions())
        var event = Event(position: SourcePosition(source: path, line: 0, offset: 0))
        var kept: [Event] = []
        // Each event kept as the detector keeps evidence: a copy that shares its buffers.
        while try reader.next(into: &event) { kept.append(event) }
        #expect(expected.count == 8)
        #expect(kept.map(Self.summary) == expected.map(Self.summary))
    }

    @Test func jsonLinesWithArraysAndBytes() throws {
        let text = #"""
            {"MESSAGE":"Failed password for root from 1.2.3.4 port 1 ssh2","SYSLOG_IDENTIFIER":"sshd","__REALTIME_TIMESTAMP":"1700000000000000","_PID":123}
            {"MESSAGE":[104,105,0,255],"X":["a","b"],"n":{"k":"v"}}
            not json
            """#
        let path = try Fixtures.temporaryFile(Array(text.utf8))
        let (events, stats) = try Fixtures.readAll(path)
        #expect(events.count == 2)
        #expect(stats.unparsable == 1)
        #expect(events[0].time == 1_700_000_000_000_000)
        #expect(events[0].string("_PID") == "123")
        #expect(Array(events[1].fields.first("MESSAGE")!) == [104, 105, 0, 255])
        #expect(events[1].fields.all("X").count == 2)
        #expect(events[1].string("n.k") == "v")
    }

    @Test func journalExportWithBinaryField() throws {
        var data = Array("__CURSOR=s=1\n__REALTIME_TIMESTAMP=1700000000000000\nSYSLOG_IDENTIFIER=sshd\nMESSAGE\n".utf8)
        let payload = Array("line one\nline two".utf8)
        var size = UInt64(payload.count)
        for _ in 0..<8 {
            data.append(UInt8(size & 0xFF))
            size >>= 8
        }
        data += payload + [10, 10]
        data += Array("__CURSOR=s=2\nMESSAGE=second\n\n".utf8)
        let path = try Fixtures.temporaryFile(data)
        let (events, stats) = try Fixtures.readAll(path)
        #expect(events.count == 2)
        #expect(events[0].string("MESSAGE") == "line one\nline two")
        #expect(events[0].position.cursor == "s=1")
        #expect(events[1].string("MESSAGE") == "second")
        #expect(stats.unparsable == 0)
    }

    @Test func truncatedJournalExportIsCountedNotFatal() throws {
        let data = Array("__CURSOR=s=1\nMESSAGE\n\u{10}\0\0\0\0\0\0\0abc".utf8)
        let path = try Fixtures.temporaryFile(data)
        let (events, stats) = try Fixtures.readAll(path)
        #expect(events.count == 1)
        #expect(stats.unparsable == 1)
    }

    @Test func absurdBinaryFieldSizeIsCutNotFatal() throws {
        let data = Array("__CURSOR=s=1\nMESSAGE\n".utf8) + Array(repeating: 0xFF, count: 8) + Array("abc\n\nMESSAGE=next\n\n".utf8)
        let path = try Fixtures.temporaryFile(data)
        var options = ReaderOptions()
        options.format = .journalExport
        let (_, stats) = try Fixtures.readAll(path, options: options)
        #expect(stats.unparsable >= 1)
    }

    @Test func hostileInputsNeverCrash() throws {
        var garbage: [UInt8] = []
        var seed: UInt64 = 42
        for _ in 0..<200_000 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            garbage.append(UInt8(truncatingIfNeeded: seed >> 33))
        }
        let inputs: [[UInt8]] = [
            [],
            [0xFF, 0xFE, 0x00, 0x41, 0x0A, 0xC3, 0x28, 0x0A],
            Array("Jan  1 00:00:00 h sshd[1]: a\0b\n".utf8),
            Array(repeating: UInt8(ascii: "A"), count: 10 << 20) + [10] + Array("Jan  1 00:00:00 h sshd[1]: after\n".utf8),
            garbage,
            Array("<999999999999>1 \n<".utf8),
        ]
        for input in inputs {
            let path = try Fixtures.temporaryFile(input)
            // Every input in every format: garbage must be counted, never fatal.
            for format in InputFormat.allCases {
                var options = ReaderOptions()
                options.format = format
                options.maxLineBytes = 1 << 20
                let (events, stats) = try Fixtures.readAll(path, options: options)
                #expect(events.count <= max(1, stats.lines))
            }
            try? FileManager.default.removeItem(atPath: path)
        }
        // The 10 MB line is cut and counted, and the line after it is read intact.
        let big = Array(repeating: UInt8(ascii: "A"), count: 10 << 20) + [10] + Array("Jan  1 00:00:00 h sshd[1]: after\n".utf8)
        let path = try Fixtures.temporaryFile(big)
        let (events, stats) = try Fixtures.readAll(path)
        #expect(stats.truncated == 1)
        #expect(events.last?.string("MESSAGE") == "after")
        #expect(events.first!.fields.first("MESSAGE")!.count == 1 << 20)
    }
}
