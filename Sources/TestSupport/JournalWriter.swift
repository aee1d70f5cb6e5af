import Foundation
import Ingest

/// Writes real journal files with `systemd-journal-remote`, which stores Journal Export Format
/// entries as given (timestamps and boot id included), so tests need no running journald.
package enum JournalWriter {
    package static let remote = "/lib/systemd/systemd-journal-remote"

    package static var available: Bool { FileManager.default.isExecutableFile(atPath: remote) }

    /// A fixed boot id, so that entries written by separate runs belong to one boot.
    package static let bootID = "5f1d0c2e9a8b47c6b3e2d1f0a9b8c7d6"

    /// One entry in Journal Export Format; values with a newline use the binary-safe form.
    package static func export(_ fields: [(String, String)], time: Int64 = now(), boot: String = bootID) -> Data {
        var out = Data()
        var all = [
            ("__REALTIME_TIMESTAMP", String(time)), ("__MONOTONIC_TIMESTAMP", String(max(1, time % 1_000_000_000))), ("_BOOT_ID", boot),
        ]
        all += fields
        for (name, value) in all {
            let bytes = Data(value.utf8)
            if bytes.contains(10) {
                out += Data((name + "\n").utf8)
                var size = UInt64(bytes.count).littleEndian
                out += Data(bytes: &size, count: 8)
                out += bytes
                out += Data([10])
            } else {
                out += Data((name + "=" + value + "\n").utf8)
            }
        }
        out += Data([10])
        return out
    }

    /// An sshd entry as journald stores one received over /dev/log.
    package static func sshd(_ message: String, pid: Int = 4242, host: String = "web1", time: Int64 = now(), boot: String = bootID)
        -> Data
    {
        export(
            [
                ("_HOSTNAME", host), ("_TRANSPORT", "syslog"), ("SYSLOG_IDENTIFIER", "sshd"), ("SYSLOG_FACILITY", "10"),
                ("_PID", String(pid)), ("_COMM", "sshd"), ("PRIORITY", "5"), ("MESSAGE", message),
            ], time: time, boot: boot)
    }

    /// An audit.log record as journald's audit transport stores it: MESSAGE is the type name and
    /// the record after its `audit(…):` stamp, the serial is `_AUDIT_ID`, the entry's time is the
    /// record's. Nil for a record with nothing after the stamp (EOE), which journald drops.
    package static func audit(_ line: String, host: String = "web1", boot: String = bootID) -> Data? {
        guard let typeStart = line.range(of: "type="), let stamp = line.range(of: " msg=audit("),
            let close = line[stamp.upperBound...].range(of: "):")
        else { return nil }
        let type = String(line[typeStart.upperBound..<stamp.lowerBound])
        let parts = line[stamp.upperBound..<close.lowerBound].split(separator: ":")
        let body = line[close.upperBound...].trimmingCharacters(in: .whitespaces)
        guard parts.count == 2, !body.isEmpty, let seconds = Double(parts[0]) else { return nil }
        let number = AuditParser.typeNames.first { $0.value == type }.map { String($0.key) } ?? "0"
        return export(
            [
                ("_HOSTNAME", host), ("_TRANSPORT", "audit"), ("_AUDIT_TYPE", number), ("_AUDIT_ID", String(parts[1])),
                ("SYSLOG_FACILITY", "4"), ("SYSLOG_IDENTIFIER", "audit"), ("_AUDIT_TYPE_NAME", type), ("MESSAGE", type + " " + body),
            ], time: Int64(seconds * 1_000_000), boot: boot)
    }

    package static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }

    /// Appends `entries` to `file` (a path ending in `.journal`), creating it if needed.
    package static func write(_ entries: [Data], to file: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: remote)
        p.arguments = ["--output=\(file)", "-"]
        let input = Pipe()
        p.standardInput = input
        p.standardError = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        try input.fileHandleForWriting.write(contentsOf: entries.reduce(Data(), +))
        try input.fileHandleForWriting.close()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw Failure(description: "systemd-journal-remote exited with \(p.terminationStatus)") }
    }

    /// A journal-remote process kept open on a pipe: each `append` is stored at once, as a live
    /// journald would, and followers see it without the writer closing the file.
    package final class Live {
        private let process = Process()
        private let input = Pipe()

        package init(file: String) throws {
            process.executableURL = URL(fileURLWithPath: remote)
            process.arguments = ["--output=\(file)", "-"]
            process.standardInput = input
            process.standardError = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            // It would otherwise notify a service manager the test itself may be talking to.
            var env = ProcessInfo.processInfo.environment
            env["NOTIFY_SOCKET"] = nil
            process.environment = env
            try process.run()
        }

        package func append(_ entry: Data) throws {
            try input.fileHandleForWriting.write(contentsOf: entry)
        }

        package func close() {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }

        deinit {
            if process.isRunning {
                try? input.fileHandleForWriting.close()
                process.waitUntilExit()
            }
        }
    }

    package struct Failure: Error, CustomStringConvertible {
        package var description: String
    }
}
