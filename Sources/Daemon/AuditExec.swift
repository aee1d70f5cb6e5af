import Foundation

/// Audit records as auditd writes them to audit.log for one execve (tests and `bench audit`): SYSCALL, EXECVE, CWD,
/// PATH, PROCTITLE and EOE, values quoted or hex-encoded by auditd's rule (hex when a value
/// holds a space, a quote, a control character or a byte above 0x7e).
package struct AuditExec: Sendable {
    package var exe: String
    package var argv: [String]
    package var cwd = "/home/alice"
    package var uid = 1000
    package var auid = 1000
    package var pid = 4242
    package var ppid = 4200

    package init(exe: String, argv: [String], pid: Int = 4242, ppid: Int = 4200, uid: Int = 1000, auid: Int = 1000) {
        self.exe = exe
        self.argv = argv
        self.pid = pid
        self.ppid = ppid
        self.uid = uid
        self.auid = auid
    }

    package static func encoded(_ s: String) -> String {
        let unsafe = s.utf8.contains { $0 <= 0x20 || $0 == 0x22 || $0 >= 0x7F }
        return unsafe ? hex(Array(s.utf8)) : "\"\(s)\""
    }

    package static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02X", $0) }.joined() }

    /// The records, one per line; `eoe: false` leaves the closing EOE out.
    package func lines(serial: Int, time: Int = 1_764_240_000, eoe: Bool = true) -> [String] {
        let stamp = "msg=audit(\(time).123:\(serial)):"
        let comm = String((exe.split(separator: "/").last ?? "x").prefix(15))
        var out = [
            "type=SYSCALL \(stamp) arch=c000003e syscall=59 success=yes exit=0 a0=55d1c0a0 a1=55d1c0b0 a2=55d1c0c0 a3=0 items=2 "
                + "ppid=\(ppid) pid=\(pid) auid=\(auid) uid=\(uid) gid=\(uid) euid=\(uid) suid=\(uid) fsuid=\(uid) egid=\(uid) "
                + "sgid=\(uid) fsgid=\(uid) tty=pts0 ses=3 comm=\(Self.encoded(comm)) exe=\(Self.encoded(exe)) key=\"exec\"",
            "type=EXECVE \(stamp) argc=\(argv.count) "
                + argv.enumerated().map { "a\($0.offset)=\(Self.encoded($0.element))" }.joined(separator: " "),
            "type=CWD \(stamp) cwd=\(Self.encoded(cwd))",
            "type=PATH \(stamp) item=0 name=\(Self.encoded(exe)) inode=262600 dev=fe:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL",
            "type=PROCTITLE \(stamp) proctitle=\(Self.hex(Array(argv.joined(separator: "\u{0}").utf8)))",
        ]
        if eoe { out.append("type=EOE \(stamp) ") }
        return out
    }
}
