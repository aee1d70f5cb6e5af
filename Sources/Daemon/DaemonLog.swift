import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The daemon's own log: one line per message on standard error. When standard error is the
/// journal's stream (systemd sets JOURNAL_STREAM to its device and inode), each line starts with
/// an sd-daemon priority prefix (`<3>` error … `<7>` debug) so journald keeps the level;
/// otherwise lines read `logtriage: warning: message key=value`.
package struct DaemonLogHandler: LogHandler {
    package var logLevel: Logger.Level = .info
    package var metadata: Logger.Metadata = [:]
    private let journal: Bool

    package init(label: String) {
        journal = Self.stderrIsJournal()
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package static func bootstrap() {
        LoggingSystem.bootstrap { DaemonLogHandler(label: $0) }
    }

    package func log(event: LogEvent) {
        var line = journal ? Self.prefix(event.level) : "logtriage: "
        if !journal, event.level >= .warning { line += "\(event.level == .warning ? "warning" : "error"): " }
        line += "\(event.message)"
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        for key in all.keys.sorted() { line += " \(key)=\(all[key]!)" }
        // One write per line, newlines inside a message kept on it, so no line interleaves another.
        line = line.replacingOccurrences(of: "\n", with: " ") + "\n"
        line.withUTF8 { _ = write(2, $0.baseAddress!, $0.count) }
    }

    /// sd-daemon(3) prefixes: the syslog priority in angle brackets.
    static func prefix(_ level: Logger.Level) -> String {
        switch level {
        case .trace, .debug: "<7>"
        case .info: "<6>"
        case .notice: "<5>"
        case .warning: "<4>"
        case .error: "<3>"
        case .critical: "<2>"
        }
    }

    /// True when JOURNAL_STREAM names the device and inode of our standard error.
    static func stderrIsJournal() -> Bool {
        guard let value = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(2, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }
}
