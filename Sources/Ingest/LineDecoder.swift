import EventModel

/// Turns single lines of a followed file into events: syslog (RFC 3164 or 5424) or a JSON
/// object per line, chosen per line when the format is `auto`.
package struct LineDecoder: Sendable {
    private var syslog: SyslogParser
    private let json = JSONLineParser()
    /// `syslog`, `jsonl`, or `auto` to decide per line.
    package var format: InputFormat

    /// `year` is for syslog stamps that carry none; without it they are read relative to `now`.
    package init(format: InputFormat, year: Int? = nil, now: Int64) {
        self.format = format
        syslog = SyslogParser(year: year, referenceTime: now)
    }

    /// Live logs are current: stamps without a year are read relative to `now`.
    package mutating func setNow(_ now: Int64) { syslog.referenceTime = now }

    /// The line starts like an audit.log record (`type=… msg=audit(` or `node=… type=…`).
    package static func isAuditRecord(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
        guard line.starts(with: "type=".utf8) || line.starts(with: "node=".utf8) else { return false }
        return AuditParser.find(line, "audit(", from: 5).map { $0 < 256 } ?? false
    }

    /// The event for `line`, and whether it had the structure its format promises.
    package mutating func decode(_ line: UnsafeBufferPointer<UInt8>, position: SourcePosition) -> (event: Event?, parsed: Bool) {
        var event = Event(position: position)
        var position = position
        let (made, parsed) = decode(line, position: &position, into: &event)
        return (made ? event : nil, parsed)
    }

    /// `decode(_:position:)` into `event` (its field list reused for syslog lines, which most
    /// lines are): whether the line gave an event, and whether it had its format's structure.
    /// `event` is left as it was when the line gives none. `position` is only read: in-out, it
    /// is read where it lies (passed by value, it was copied for every line, a retain and a
    /// release of the source's name).
    package mutating func decode(_ line: UnsafeBufferPointer<UInt8>, position: inout SourcePosition, into event: inout Event) -> (
        made: Bool, parsed: Bool
    ) {
        if line.isEmpty { return (false, true) }
        let audit = (format == .audit || format == .auto) && Self.isAuditRecord(line)
        if format == .audit || audit {
            // The record as the message; AuditAssembler reads and joins it.
            var fields = EventFields(capacity: line.count + 16, fields: 2)
            fields.add(FieldName.message, buffer: UnsafeRawBufferPointer(line))
            event = Event(position: position, fields: fields)
            return (true, audit)
        }
        var isJSON = format == .jsonl
        if format == .auto {
            var i = 0
            while i < line.count, line[i] == 0x20 || line[i] == 0x09 { i += 1 }
            isJSON = i < line.count && line[i] == UInt8(ascii: "{")
        }
        if isJSON {
            switch json.parse(line, position: position) {
            case .success(let parsed):
                event = parsed
                return (true, true)
            case .failure: return (false, false)
            }
        }
        return (true, syslog.parse(line, position: &position, into: &event))
    }
}
