/// Field names used across modules. Records follow journald's naming, so that a rule or a
/// consumer sees the same names whether an event came from the journal, syslog or a file.
package enum FieldName {
    package static let message = "MESSAGE"
    package static let identifier = "SYSLOG_IDENTIFIER"
    package static let pid = "_PID"
    package static let hostname = "_HOSTNAME"
    package static let priority = "PRIORITY"
    package static let facility = "SYSLOG_FACILITY"
    package static let comm = "_COMM"
    package static let syslogTimestamp = "SYSLOG_TIMESTAMP"
    package static let msgid = "SYSLOG_MSGID"
    package static let structuredData = "SYSLOG_STRUCTURED_DATA"
    package static let transport = "_TRANSPORT"
    package static let systemdUnit = "_SYSTEMD_UNIT"
    package static let realtimeTimestamp = "__REALTIME_TIMESTAMP"
    package static let sourceRealtimeTimestamp = "_SOURCE_REALTIME_TIMESTAMP"
    package static let cursor = "__CURSOR"

    /// The instance of a name above that equals `name`, else `name` itself. Names read from
    /// configuration are made canonical once, at setup: compared per event with the names a
    /// reader writes, they then share storage, and String's equality returns at its first
    /// check (the same bits) instead of comparing the bytes of a name longer than 15.
    package static func canonical(_ name: String) -> String { known[name] ?? name }

    private static let known: [String: String] = {
        let names = [
            message, identifier, pid, hostname, priority, facility, comm, syslogTimestamp, msgid, structuredData, transport,
            systemdUnit, realtimeTimestamp, sourceRealtimeTimestamp, cursor,
        ]
        return Dictionary(uniqueKeysWithValues: names.map { ($0, $0) })
    }()
}
