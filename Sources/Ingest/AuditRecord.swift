import EventModel

#if canImport(Glibc)
    import Glibc
#endif

/// One Linux audit record: `type=SYSCALL msg=audit(1684329817.579:2995): arch=c000003e …`.
///
/// Values are decoded: quotes removed, the strings auditd hex-encodes (those holding spaces,
/// quotes or control characters) turned back into bytes, the `msg='…'` of user-space records
/// opened into its fields. The enriched part auditd appends after a 0x1D byte
/// (`log_format = ENRICHED`: `SYSCALL=execve UID="root" …`) is read like the rest.
package struct AuditRecord: Sendable {
    package var type: String
    /// Microseconds since the epoch.
    package var time: Int64
    package var serial: UInt64
    package var node: String?
    /// The `key=value` pairs in order, values decoded, all in one buffer.
    package var fields: EventFields
    /// The record as written, without the `node=` prefix.
    package var text: [UInt8]

    package init(type: String, time: Int64, serial: UInt64, node: String? = nil, fields: EventFields, text: [UInt8]) {
        self.type = type
        self.time = time
        self.serial = serial
        self.node = node
        self.fields = fields
        self.text = text
    }

    package func first(_ name: String) -> ArraySlice<UInt8>? { fields.first(name) }
    package func string(_ name: String) -> String? { first(name).map { String(decoding: $0, as: UTF8.self) } }

    /// A decimal value (`pid=1234`, `auid=-1`); nil when absent or not a number.
    package func integer(_ name: String) -> Int64? {
        guard let v = first(name), !v.isEmpty, v.count <= 19 else { return nil }
        var n: Int64 = 0
        var negative = false
        for (k, c) in v.enumerated() {
            if k == 0, c == UInt8(ascii: "-"), v.count > 1 {
                negative = true
                continue
            }
            guard c >= 48, c <= 57 else { return nil }
            n = n * 10 + Int64(c - 48)
        }
        return negative ? -n : n
    }
}

package enum AuditParser {
    /// Parses an audit.log line (`[node=N ]type=T msg=audit(SEC.MSEC:SERIAL): …`), also when a
    /// syslog header or the kernel's `audit: ` prefix came first, or with a numeric type
    /// (`type=1300 audit(…):`, as the kernel prints it). Nil when the line is not an audit record.
    package static func parse(line: UnsafeBufferPointer<UInt8>) -> AuditRecord? {
        guard let typeAt = find(line, "type=", from: 0) else { return nil }
        var node: String?
        if let n = find(line, "node=", from: 0), n < typeAt {
            var e = n + 5
            while e < typeAt, line[e] != 0x20 { e += 1 }
            node = String(decoding: UnsafeBufferPointer(rebasing: line[(n + 5)..<e]), as: UTF8.self)
        }
        var i = typeAt + 5
        let typeStart = i
        while i < line.count, line[i] != 0x20 { i += 1 }
        let rawType = String(decoding: UnsafeBufferPointer(rebasing: line[typeStart..<i]), as: UTF8.self)
        while i < line.count, line[i] == 0x20 { i += 1 }
        if line[i...].starts(with: "msg=".utf8) { i += 4 }
        guard line[i...].starts(with: "audit(".utf8) else { return nil }
        i += 6
        guard let (time, serial, end) = stamp(line, at: i) else { return nil }
        i = end
        guard i < line.count, line[i] == UInt8(ascii: ":") else { return nil }
        i += 1
        let type = typeName(rawType)
        let body = UnsafeBufferPointer(rebasing: line[i...])
        return AuditRecord(
            type: type, time: time, serial: serial, node: node, fields: fields(body, type: type),
            text: Array(UnsafeBufferPointer(rebasing: line[typeAt...])))
    }

    /// Every record in a line: one usually, several when a collector joined the records of an
    /// event on one line (`type=SYSCALL msg=audit(…): … type=CWD msg=audit(…): …`).
    package static func parseAll(line: UnsafeBufferPointer<UInt8>) -> [AuditRecord] {
        var out: [AuditRecord] = []
        var previous: Int?
        var from = 0
        func parse(from start: Int, to next: Int) {
            var end = next
            while end > start, line[end - 1] == 0x20 { end -= 1 }
            if let r = Self.parse(line: UnsafeBufferPointer(rebasing: line[start..<end])) { out.append(r) }
        }
        while let t = find(line, "type=", from: from) {
            from = t + 5
            guard t == 0 || line[t - 1] == 0x20 || line[t - 1] == 0x1D else { continue }
            var e = t + 5
            while e < line.count, line[e] != 0x20 { e += 1 }
            let after = UnsafeBufferPointer(rebasing: line[e...])
            guard after.starts(with: " msg=audit(".utf8) || after.starts(with: " audit(".utf8) else { continue }
            // A `node=NAME ` just before belongs to this record.
            var start = t
            if t > 6, line[t - 1] == 0x20, let node = findLast(line, "node=", before: t - 1, after: max(0, t - 256)),
                !line[(node + 5)..<(t - 1)].contains(0x20)
            {
                start = node
            }
            if let previous { parse(from: previous, to: start) }
            previous = start
            from = e
        }
        if let previous { parse(from: previous, to: line.count) }
        return out
    }

    /// The last index of `needle` that ends at or before `before`.
    static func findLast(_ b: UnsafeBufferPointer<UInt8>, _ needle: StaticString, before: Int, after: Int) -> Int? {
        let m = needle.utf8CodeUnitCount
        var i = before - m
        while i >= after {
            if memcmp(b.baseAddress! + i, needle.utf8Start, m) == 0 { return i }
            i -= 1
        }
        return nil
    }

    /// Parses a record as journald's audit transport stores it: MESSAGE is `TYPE key=value …`
    /// (the type name, then the record after its `audit(…):` stamp); the serial comes from
    /// `_AUDIT_ID` and the time from the entry.
    package static func parse(journalMessage message: ArraySlice<UInt8>, typeName: String?, serial: UInt64, time: Int64)
        -> AuditRecord?
    {
        message.withUnsafeBufferPointer { m in
            var i = 0
            while i < m.count, m[i] != 0x20 { i += 1 }
            let first = String(decoding: UnsafeBufferPointer(rebasing: m[..<i]), as: UTF8.self)
            let type = typeName ?? Self.typeName(first)
            // The body starts after the type word when the message starts with it.
            let bodyStart = first == type || typeName == nil ? i : 0
            let body = UnsafeBufferPointer(rebasing: m[bodyStart...])
            var text = Array("type=\(type) ".utf8)
            text.append(contentsOf: body.drop { $0 == 0x20 })
            return AuditRecord(type: type, time: time, serial: serial, fields: fields(body, type: type), text: text)
        }
    }

    /// `SEC.MSEC:SERIAL)` at `i`: the time in microseconds, the serial, and the index after `)`.
    static func stamp(_ b: UnsafeBufferPointer<UInt8>, at start: Int) -> (Int64, UInt64, Int)? {
        var i = start
        var seconds: Int64 = 0
        var digits = 0
        while i < b.count, b[i] >= 48, b[i] <= 57, digits < 12 {
            seconds = seconds * 10 + Int64(b[i] - 48)
            i += 1
            digits += 1
        }
        guard digits > 0, i < b.count, b[i] == UInt8(ascii: ".") else { return nil }
        i += 1
        var fraction: Int64 = 0
        var scale: Int64 = 1_000_000
        while i < b.count, b[i] >= 48, b[i] <= 57 {
            if scale > 1 {
                scale /= 10
                fraction += Int64(b[i] - 48) * scale
            }
            i += 1
        }
        guard i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
        i += 1
        var serial: UInt64 = 0
        digits = 0
        while i < b.count, b[i] >= 48, b[i] <= 57, digits < 19 {
            serial = serial * 10 + UInt64(b[i] - 48)
            i += 1
            digits += 1
        }
        guard digits > 0, i < b.count, b[i] == UInt8(ascii: ")") else { return nil }
        return (seconds * 1_000_000 + fraction, serial, i + 1)
    }

    /// Fields whose values auditd writes hex-encoded when they hold unsafe characters (an
    /// unquoted value of these is hex). `aN` counts only in EXECVE records, where it is argv.
    static func isUntrusted(_ name: String) -> Bool {
        switch name {
        case "comm", "exe", "name", "cwd", "path", "proctitle", "cmd", "acct", "data", "key", "vm", "old-vm", "new-vm",
            "ocomm", "root_dir", "sw", "watch", "dir", "file", "grantors", "unit":
            true
        default: false
        }
    }

    /// The `key=value` pairs of a record body, decoded.
    static func fields(_ body: UnsafeBufferPointer<UInt8>, type: String) -> EventFields {
        var out = EventFields(capacity: body.count, fields: 24)
        fields(body, execve: type == "EXECVE", into: &out)
        return out
    }

    private static func fields(_ body: UnsafeBufferPointer<UInt8>, execve: Bool, into out: inout EventFields) {
        var i = 0
        let n = body.count
        while i < n {
            // The enriched part is separated by 0x1D; it is more pairs of the same form.
            while i < n, body[i] == 0x20 || body[i] == 0x1D || body[i] == 0x09 { i += 1 }
            let keyStart = i
            while i < n, body[i] != UInt8(ascii: "="), body[i] != 0x20, body[i] != 0x1D { i += 1 }
            guard i < n, body[i] == UInt8(ascii: "="), i > keyStart else {
                // A word without a value (an AVC's "denied { read } for"): skip it.
                while i < n, body[i] != 0x20, body[i] != 0x1D { i += 1 }
                continue
            }
            let name = String(decoding: UnsafeBufferPointer(rebasing: body[keyStart..<i]), as: UTF8.self)
            i += 1
            let value: UnsafeBufferPointer<UInt8>
            var quoted = false
            if i < n, body[i] == UInt8(ascii: "\"") || body[i] == UInt8(ascii: "'") {
                let quote = body[i]
                let start = i + 1
                var e = start
                while e < n, body[e] != quote { e += 1 }
                value = UnsafeBufferPointer(rebasing: body[start..<e])
                i = min(n, e + 1)
                quoted = true
                if quote == UInt8(ascii: "'"), name == "msg" {
                    // User-space records carry their own pairs in msg='…'.
                    fields(value, execve: execve, into: &out)
                    continue
                }
            } else {
                let start = i
                while i < n, body[i] != 0x20, body[i] != 0x1D { i += 1 }
                value = UnsafeBufferPointer(rebasing: body[start..<i])
            }
            let hex = !quoted && (execve ? isArgument(name) : isUntrusted(name)) && isHex(value)
            if name == "key", hex {
                // Several rule keys are hex-encoded, joined by 0x01.
                var decoded: [UInt8] = []
                hexDecode(value, into: &decoded)
                for part in decoded.split(separator: 0x01) { out.add(name, bytes: part) }
            } else if hex {
                out.add(name) { hexDecode(value, into: &$0) }
            } else {
                out.add(name, buffer: UnsafeRawBufferPointer(value))
            }
        }
    }

    /// `a0`, `a12`, `a3[1]` (a long argument in parts).
    static func isArgument(_ name: String) -> Bool {
        let u = name.utf8
        var i = u.startIndex
        guard i != u.endIndex, u[i] == UInt8(ascii: "a") else { return false }
        i = u.index(after: i)
        guard i != u.endIndex, u[i] >= 48, u[i] <= 57 else { return false }
        while i != u.endIndex, u[i] >= 48, u[i] <= 57 { i = u.index(after: i) }
        return i == u.endIndex || u[i] == UInt8(ascii: "[")
    }

    /// An even-length, non-empty string of hex digits.
    static func isHex(_ v: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !v.isEmpty, v.count % 2 == 0 else { return false }
        for c in v where hexValue(c) == nil { return false }
        return true
    }

    /// Appends the bytes of `v`, which `isHex` accepted.
    static func hexDecode(_ v: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        var k = 0
        while k + 1 < v.count {
            out.append((hexValue(v[k]) ?? 0) << 4 | (hexValue(v[k + 1]) ?? 0))
            k += 2
        }
    }

    @inline(__always)
    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 65...70: c - 55
        case 97...102: c - 87
        default: nil
        }
    }

    /// Type names for the numbers the kernel prints (`type=1300`); names pass through.
    static func typeName(_ raw: String) -> String {
        guard let number = Int(raw) else { return raw }
        return typeNames[number] ?? "UNKNOWN[\(number)]"
    }

    package static let typeNames: [Int: String] = [
        1100: "USER_AUTH", 1101: "USER_ACCT", 1102: "USER_MGMT", 1103: "CRED_ACQ", 1104: "CRED_DISP", 1105: "USER_START",
        1106: "USER_END", 1107: "USER_AVC", 1108: "USER_CHAUTHTOK", 1109: "USER_ERR", 1110: "CRED_REFR", 1111: "USYS_CONFIG",
        1112: "USER_LOGIN", 1113: "USER_LOGOUT", 1114: "ADD_USER", 1115: "DEL_USER", 1116: "ADD_GROUP", 1117: "DEL_GROUP",
        1123: "USER_CMD", 1124: "USER_TTY", 1125: "CHUSER_ID", 1126: "GRP_AUTH", 1127: "SYSTEM_BOOT", 1128: "SYSTEM_SHUTDOWN",
        1129: "SYSTEM_RUNLEVEL", 1130: "SERVICE_START", 1131: "SERVICE_STOP", 1300: "SYSCALL", 1302: "PATH", 1303: "IPC",
        1304: "SOCKETCALL", 1305: "CONFIG_CHANGE", 1306: "SOCKADDR", 1307: "CWD", 1309: "EXECVE", 1320: "EOE",
        1321: "BPRM_FCAPS", 1322: "CAPSET", 1323: "MMAP", 1324: "NETFILTER_PKT", 1325: "NETFILTER_CFG", 1326: "SECCOMP",
        1327: "PROCTITLE", 1328: "FEATURE_CHANGE", 1329: "REPLACE", 1330: "KERN_MODULE", 1331: "FANOTIFY", 1400: "AVC",
        1700: "ANOM_PROMISCUOUS", 1701: "ANOM_ABEND",
    ]

    /// The first index of `needle` in `b` at or after `from`.
    static func find(_ b: UnsafeBufferPointer<UInt8>, _ needle: StaticString, from: Int) -> Int? {
        let m = needle.utf8CodeUnitCount
        guard b.count >= m else { return nil }
        let first = needle.utf8Start[0]
        var i = from
        while i + m <= b.count {
            if b[i] == first, memcmp(b.baseAddress! + i, needle.utf8Start, m) == 0 { return i }
            i += 1
        }
        return nil
    }
}
