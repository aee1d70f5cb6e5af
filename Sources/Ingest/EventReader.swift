import EventModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The formats `scan` reads.
package enum InputFormat: String, Sendable, CaseIterable {
    case auto
    case syslog
    case jsonl
    case journalExport = "journal-export"
    /// audit.log: `type=… msg=audit(…): …` records, one per line.
    case audit
}

/// Counters a reader keeps, reported in the scan summary.
package struct ReadStatistics: Sendable, Equatable {
    package var lines = 0
    package var bytes: UInt64 = 0
    package var events = 0
    /// Lines that yielded no usable structure (malformed JSON, syslog without any header).
    package var unparsable = 0
    /// Lines cut at the line-length limit.
    package var truncated = 0

    package init() {}

    package static func += (lhs: inout ReadStatistics, rhs: ReadStatistics) {
        lhs.lines += rhs.lines
        lhs.bytes += rhs.bytes
        lhs.events += rhs.events
        lhs.unparsable += rhs.unparsable
        lhs.truncated += rhs.truncated
    }
}

package struct ReaderOptions: Sendable {
    package var format: InputFormat = .auto
    package var year: Int?
    package var maxLineBytes = 1 << 20
    package init() {}
}

/// Reads one file (or standard input) as a sequence of events in the detected or forced format.
package struct EventReader: ~Copyable {
    private var reader: ByteReader
    package let source: String
    package private(set) var format: InputFormat
    package private(set) var statistics = ReadStatistics()
    private var decoder: LineDecoder
    /// The position of each line in turn (see `nextLineEvent`); moved out while a line is read.
    private var linePosition: SourcePosition?

    /// Opens `path` (`-` is standard input).
    package init(path: String, options: ReaderOptions) throws(IngestError) {
        var reference = Int64(time(nil)) * 1_000_000
        let fd: Int32
        if path == "-" {
            fd = 0
        } else {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { throw .open(path: path, errno: errno) }
            var st = stat()
            if fstat(fd, &st) == 0 {
                if (st.st_mode & S_IFMT) == S_IFDIR {
                    close(fd)
                    throw .open(path: path, errno: EISDIR)
                }
                reference = Int64(st.st_mtim.tv_sec) * 1_000_000
            }
        }
        self.init(
            reader: ByteReader(fd: fd, ownsDescriptor: path != "-", maxLineBytes: options.maxLineBytes),
            source: path, options: options, referenceTime: reference)
    }

    package init(reader: consuming ByteReader, source: String, options: ReaderOptions, referenceTime: Int64) {
        self.reader = reader
        self.source = source
        self.format = options.format
        self.decoder = LineDecoder(format: options.format, year: options.year, now: referenceTime)
        linePosition = SourcePosition(source: source, line: 0, offset: 0)
    }

    /// The next event, or nil at end of input. Lines that cannot be parsed are counted and skipped.
    package mutating func next() throws -> Event? {
        var event = Event(position: SourcePosition(source: source, line: 0, offset: 0))
        return try next(into: &event) ? event : nil
    }

    /// The next event into `event`, whose field list is reused when nothing else holds it
    /// (see `EventFields.reset(backing:)`); false at the end of the input. A caller that keeps
    /// one event for a whole input saves an allocation per line for most lines.
    package mutating func next(into event: inout Event) throws -> Bool {
        if format == .auto {
            format = try detect()
            decoder.format = format
        }
        switch format {
        case .journalExport:
            guard let entry = try nextExportEntry() else { return false }
            event = entry
            return true
        case .jsonl, .syslog, .audit, .auto: return try nextLineEvent(into: &event)
        }
    }

    private mutating func detect() throws -> InputFormat {
        let head = try reader.peek(4096)
        var i = 0
        while i < head.count, head[i] == 10 || head[i] == 13 || head[i] == 32 || head[i] == 9 { i += 1 }
        guard i < head.count else { return .syslog }
        if head[i] == UInt8(ascii: "{") { return .jsonl }
        if head[i...].withUnsafeBufferPointer({ LineDecoder.isAuditRecord($0) }) { return .audit }
        // Journal export: KEY=value, keys of upper-case letters, digits and '_'.
        var j = i
        while j < head.count, head[j] == UInt8(ascii: "_") || head[j].isDigit || (65...90).contains(head[j]) { j += 1 }
        if j > i, j < head.count, head[j] == UInt8(ascii: "=") || head[j] == 10 {
            let key = head[i..<j]
            if key.starts(with: "__CURSOR".utf8) || key.starts(with: "__REALTIME".utf8) || key.starts(with: "_".utf8)
                || key.elementsEqual("MESSAGE".utf8) || key.elementsEqual("PRIORITY".utf8)
            {
                return .journalExport
            }
        }
        return .syslog
    }

    private mutating func nextLineEvent(into event: inout Event) throws -> Bool {
        while true {
            let lineNumber = statistics.lines + 1
            var decoder = decoder
            // One position for the reader's lines, its numbers set for each (moved out and back,
            // also when reading fails): a new one per line retained and released the source's
            // name each time.
            var position: SourcePosition
            if let kept = linePosition.take() { position = kept } else { position = SourcePosition(source: source, line: 0, offset: 0) }
            let outcome: (Bool, Bool, Bool)?
            do {
                outcome = try reader.nextLine { line, offset, truncated in
                    position.line = lineNumber
                    position.offset = offset
                    let (made, parsed) = decoder.decode(line, position: &position, into: &event)
                    return (made, parsed, truncated)
                }
            } catch {
                linePosition = consume position
                throw error
            }
            self.decoder = decoder
            linePosition = consume position
            guard let (made, parsed, truncated) = outcome else { return false }
            statistics.lines += 1
            statistics.bytes = reader.offset
            if truncated { statistics.truncated += 1 }
            if !parsed { statistics.unparsable += 1 }
            if made {
                statistics.events += 1
                return true
            }
        }
    }

    /// One journal export entry: `KEY=value` lines, binary fields as `KEY\n<le64 size><data>\n`, a blank line between entries.
    private mutating func nextExportEntry() throws -> Event? {
        var fields = EventFields(capacity: 512)
        var entryOffset: UInt64?
        var entryLine = 0
        var malformed = false
        while true {
            enum Step { case field(String, [UInt8]?), binary(String), end, skip }
            let step: Step? = try reader.nextLine { line, offset, _ in
                if line.isEmpty { return .end }
                if entryOffset == nil { entryOffset = offset }
                if let eq = line.firstIndex(of: UInt8(ascii: "=")) {
                    let name = String(decoding: UnsafeBufferPointer(rebasing: line[..<eq]), as: UTF8.self)
                    return .field(name, Array(UnsafeBufferPointer(rebasing: line[(eq + 1)...])))
                }
                let name = String(decoding: line, as: UTF8.self)
                guard !name.isEmpty, name.utf8.allSatisfy({ $0 == UInt8(ascii: "_") || $0.isDigit || (65...90).contains($0) })
                else { return .skip }
                return .binary(name)
            }
            statistics.bytes = reader.offset
            guard let step else {
                return finishEntry(fields, offset: entryOffset, line: entryLine, malformed: malformed)
            }
            statistics.lines += 1
            if entryLine == 0 { entryLine = statistics.lines }
            switch step {
            case .end:
                if let event = finishEntry(fields, offset: entryOffset, line: entryLine, malformed: malformed) { return event }
                fields = EventFields(capacity: 512)
                entryOffset = nil
                entryLine = 0
                malformed = false
            case .field(let name, let value):
                fields.add(name, bytes: value ?? [])
            case .binary(let name):
                guard let sizeBytes = try reader.readBytes(8) else {
                    malformed = true
                    continue
                }
                var size: UInt64 = 0
                for k in (0..<8).reversed() { size = size << 8 | UInt64(sizeBytes[k]) }
                if size > UInt64(reader.maxLineBytes) {
                    // Keep the first part, skip the rest: a hostile size must not exhaust memory.
                    guard let data = try reader.readBytes(reader.maxLineBytes) else { malformed = true; continue }
                    // The declared size is attacker-controlled: skip by a clamped count (end of input stops it).
                    _ = try reader.skipBytes(Int(clamping: size - UInt64(reader.maxLineBytes)))
                    fields.add(name, bytes: data)
                    statistics.truncated += 1
                } else if let data = try reader.readBytes(Int(size)) {
                    fields.add(name, bytes: data)
                } else {
                    malformed = true
                }
                _ = try reader.skipBytes(1)
            case .skip:
                malformed = true
            }
        }
    }

    private mutating func finishEntry(_ fields: EventFields, offset: UInt64?, line: Int, malformed: Bool) -> Event? {
        guard let offset, !fields.isEmpty else { return nil }
        if malformed { statistics.unparsable += 1 }
        var event = Event(position: SourcePosition(source: source, line: line, offset: offset), fields: fields)
        if let cursor = fields.first(FieldName.cursor) { event.position.cursor = String(decoding: cursor, as: UTF8.self) }
        event.time = JSONLineParser.eventTime(fields)
        statistics.events += 1
        return event
    }
}
