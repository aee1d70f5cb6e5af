import EventModel
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Turns audit records into events: the records of one audit event (one node and serial:
/// SYSCALL, EXECVE, CWD, PATH, PROCTITLE, …, EOE) are joined into a single event with every
/// record's fields (a field that several records carry, such as PATH's `name`, holds each value),
/// `type` naming each record, `SYSCALL` the syscall's name and MESSAGE the records' text. An
/// event that ran a program also carries process creation fields (see `ProcessFields`).
///
/// Records come from audit.log lines, from syslog messages that hold them, from journald's
/// audit transport, or as laurel's JSON events (already joined). Events that are not audit
/// records pass through unchanged.
///
/// A multi-record event is complete at its EOE record, or at PROCTITLE, which the kernel writes
/// last before EOE (journald drops EOE records); one that never completes is given out
/// after `wait` (event time, or `expire(now:)` in a live daemon), and at most `maxPending`
/// events wait at once (the oldest is given out first when more arrive), so memory stays bounded.
package struct AuditAssembler {
    package struct Statistics: Sendable, Equatable {
        package var records = 0
        package var events = 0
        /// Events given out without their EOE (timed out, crowded out, or at end of input).
        package var incomplete = 0
        package init() {}

        /// `audit: R records in E events (I incomplete)`, for summaries.
        package var line: String { "audit: \(records) records in \(events) events (\(incomplete) incomplete)" }
    }

    package private(set) var statistics = Statistics()
    package var maxPending: Int
    /// Microseconds to wait for the rest of an event.
    package var wait: Int64
    /// Look parents that no exec seen explains up in /proc (only when the records are this host's, live).
    package var liveProcesses = false

    private struct Key: Hashable {
        var node: String?
        var serial: UInt64
    }

    private struct Pending {
        var records: [AuditRecord]
        var first: Event
        var arrived: Int64
    }

    private var pending: [Key: Pending] = [:]
    /// Keys in arrival order (stale entries skipped).
    private var order: [Key] = []
    private var orderHead = 0
    package private(set) var processes = ProcessTable()

    package init(maxPending: Int = 4096, wait: Int64 = 2_000_000) {
        self.maxPending = maxPending
        self.wait = wait
    }

    package var pendingCount: Int { pending.count }

    /// Takes one event. False when it is no audit record (the caller goes on with it as it is);
    /// true when it was taken: events that became ready are appended to `out`, in order.
    package mutating func take(_ event: Event, now: Int64, into out: inout [Event]) -> Bool {
        if Self.isSurelyOther(event.fields) { return false }
        let message = event.fields.first(FieldName.message)
        let records = Self.records(in: event, message: message)
        guard !records.isEmpty else {
            let first = message?.first
            if first == UInt8(ascii: "<") {
                var sysmon = event
                guard SysmonEvent.read(into: &sysmon) else { return false }
                out.append(sysmon)
                return true
            }
            // laurel's events carry no MESSAGE.
            guard first == nil, let laurel = laurelEvent(event) else { return false }
            statistics.records += 1
            statistics.events += 1
            out.append(laurel)
            return true
        }
        for record in records { add(record, carrier: event, now: now, into: &out) }
        // A collector that joined an event's records on one line gave all of them: no need to wait.
        if records.count > 1, let last = records.last, records.allSatisfy({ $0.serial == last.serial }),
            let p = pending.removeValue(forKey: Key(node: last.node, serial: last.serial))
        {
            giveOut(p.records, carrier: p.first, into: &out)
        }
        return true
    }

    /// True when the event is surely none of what `take` takes: its first MESSAGE starts like no
    /// record (see `records(in:message:)`), sysmon event or laurel event (which has no MESSAGE).
    /// Most events are decided here, from bytes read where they lie: taking MESSAGE as a slice
    /// retained and released the line's buffer.
    private static func isSurelyOther(_ fields: EventFields) -> Bool {
        var other = false
        fields.withFirst(FieldName.message) { m in
            guard let c = m.first else { return }
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): other = !startsWithTypeName(m)
            case UInt8(ascii: "t"), UInt8(ascii: "n"), UInt8(ascii: "a"):
                other = !(m.starts(with: "type=".utf8) || m.starts(with: "node=".utf8) || m.starts(with: "audit: type=".utf8))
            case UInt8(ascii: "<"): other = false
            default: other = true
            }
        }
        return other
    }

    /// Whether `message` starts with what could be an audit type name and a space (or ends there).
    private static func startsWithTypeName(_ message: some Collection<UInt8>) -> Bool {
        for c in message {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"): continue
            case UInt8(ascii: " "): return true
            default: return false
            }
        }
        return true
    }

    /// One assembled event out, counted.
    private mutating func giveOut(_ records: [AuditRecord], carrier: Event, into out: inout [Event]) {
        statistics.events += 1
        out.append(assemble(records, carrier: carrier))
    }

    private mutating func add(_ record: AuditRecord, carrier event: Event, now: Int64, into out: inout [Event]) {
        statistics.records += 1
        let key = Key(node: record.node, serial: record.serial)
        // Events written by user space are one record; so is a kernel record when none of its serial waits.
        if pending[key] == nil, Self.isStandalone(record.type) {
            giveOut([record], carrier: event, into: &out)
            return
        }
        if record.type == "EOE" {
            if let p = pending.removeValue(forKey: key) { giveOut(p.records, carrier: p.first, into: &out) }
            return
        }
        if record.type == "PROCTITLE" {
            // The kernel writes PROCTITLE last, just before EOE; journald does not store EOE (its
            // body is empty), so this is where a syscall event read from the journal is whole.
            let p = pending.removeValue(forKey: key)
            giveOut((p?.records ?? []) + [record], carrier: p?.first ?? event, into: &out)
            return
        }
        if pending[key] != nil {
            pending[key]!.records.append(record)
        } else {
            if pending.count >= maxPending { giveOutOldest(into: &out) }
            pending[key] = Pending(records: [record], first: event, arrived: now)
            order.append(key)
        }
        // Event time moved on: what waited longer than `wait` behind this record is given out.
        expire(before: record.time - wait, arrivedBefore: nil, into: &out)
    }

    /// Live: gives out events that have waited `wait` in wall time (`now`, microseconds).
    package mutating func expire(now: Int64, into out: inout [Event]) {
        expire(before: nil, arrivedBefore: now - wait, into: &out)
    }

    /// End of input: everything still waiting.
    package mutating func flush(into out: inout [Event]) {
        while !pending.isEmpty { giveOutOldest(into: &out) }
        order.removeAll()
        orderHead = 0
    }

    /// Per source, the earliest record still waiting: a checkpoint must not move past it.
    package func heldPositions() -> [String: SourcePosition] {
        var out: [String: SourcePosition] = [:]
        for p in pending.values { out.keepEarliest(p.first.position) }
        return out
    }

    private mutating func expire(before time: Int64?, arrivedBefore: Int64?, into out: inout [Event]) {
        while orderHead < order.count {
            let key = order[orderHead]
            guard let p = pending[key] else {
                orderHead += 1
                continue
            }
            let old = time.map { (p.records.first?.time ?? .max) < $0 } ?? false || arrivedBefore.map { p.arrived < $0 } ?? false
            guard old else { break }
            giveOutOldest(into: &out)
        }
        compact()
    }

    private mutating func giveOutOldest(into out: inout [Event]) {
        while orderHead < order.count {
            let key = order[orderHead]
            orderHead += 1
            guard let p = pending.removeValue(forKey: key) else { continue }
            statistics.incomplete += 1
            giveOut(p.records, carrier: p.first, into: &out)
            break
        }
        compact()
    }

    private mutating func compact() {
        if orderHead > 1024, orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
    }

    /// Record types that never share their serial with others: user-space messages (1100–1299,
    /// 2100–2999) and the kernel's stand-alone ones.
    static func isStandalone(_ type: String) -> Bool {
        switch type {
        case "SYSCALL", "PATH", "CWD", "EXECVE", "PROCTITLE", "SOCKADDR", "EOE", "BPRM_FCAPS", "CAPSET", "MMAP", "IPC",
            "SOCKETCALL", "FD_PAIR", "OBJ_PID", "NETFILTER_CFG", "KERN_MODULE", "AVC", "SELINUX_ERR", "MQ_OPEN",
            "MQ_SENDRECV", "MQ_NOTIFY", "MQ_GETSETATTR", "IPC_SET_PERM", "EXECVE_ARGS", "FANOTIFY", "TIME_INJOFFSET",
            "TIME_ADJNTPVAL", "OPENAT2", "URINGOP", "BPF", "ANOM_ABEND", "SECCOMP":
            return false
        default:
            return true
        }
    }

    static let localHostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "" }
        return String(cString: buffer)
    }()

    /// Programs that pass audit records to syslog: auditd's dispatcher plugins and the kernel.
    static let auditWriters = ["audispd", "audisp-syslog", "audit", "auditd", "kernel", "audisp-remote"]

    /// The audit records an event holds (none when it is something else).
    static func records(in event: Event, message: ArraySlice<UInt8>?) -> [AuditRecord] {
        guard let message, let c = message.first else { return [] }
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"):
            // journald's audit transport: MESSAGE="SYSCALL arch=…", the serial in _AUDIT_ID.
            // Most messages that start with a capital are prose ("Failed password…"): a type
            // name is capitals, digits and underscores up to a space, and only then are the
            // fields looked up.
            guard startsWithTypeName(message), let transport = event.fields.first(FieldName.transport),
                transport.elementsEqual("audit".utf8),
                let id = event.fields.first("_AUDIT_ID"), let serial = UInt64(String(decoding: id, as: UTF8.self))
            else { return [] }
            let type = event.fields.first("_AUDIT_TYPE_NAME").map { String(decoding: $0, as: UTF8.self) }
            guard var r = AuditParser.parse(journalMessage: message, typeName: type, serial: serial, time: event.time ?? 0)
            else { return [] }
            r.node = event.fields.first(FieldName.hostname).map { String(decoding: $0, as: UTF8.self) }
            return [r]
        case UInt8(ascii: "t"), UInt8(ascii: "n"), UInt8(ascii: "a"):
            guard message.starts(with: "type=".utf8) || message.starts(with: "node=".utf8) || message.starts(with: "audit: type=".utf8)
            else { return [] }
            // Through syslog, only audit's own writers are believed: any program can log text
            // that looks like a record (a line of audit.log carries no identifier).
            if let writer = event.fields.first(FieldName.identifier),
                !auditWriters.contains(where: { writer.elementsEqual($0.utf8) })
            {
                return []
            }
            return message.withUnsafeBufferPointer { AuditParser.parseAll(line: $0) }
        default:
            return []
        }
    }

    /// One event from the records of one serial: MESSAGE (the records' text) and the other
    /// fields of the whole event first, then process creation fields, then each record's own.
    private mutating func assemble(_ records: [AuditRecord], carrier: Event) -> Event {
        var size = 256
        var count = 16
        for r in records {
            size += r.fields.storage.count + 2 * r.text.count + 16
            count += r.fields.count + 1
        }
        var fields = EventFields(capacity: size, fields: count)
        let head = records[0]
        fields.add(FieldName.message) { text in
            for (k, r) in records.enumerated() {
                if k > 0 { text.append(0x0A) }
                text.append(contentsOf: r.text)
            }
        }
        fields.add(FieldName.transport, "audit")
        fields.add(FieldName.identifier, "audit")
        if let node = head.node {
            fields.add(FieldName.hostname, node)
        } else if let host = carrier.fields.first(FieldName.hostname) {
            fields.add(FieldName.hostname, bytes: host)
        }
        if let boot = carrier.fields.first("_BOOT_ID") { fields.add("_BOOT_ID", bytes: boot) }
        fields.add("AUDIT_SERIAL", String(head.serial))
        // The syscall's name as auditd's enriched format writes it; when the records do not, from its number.
        let syscall = records.first { $0.type == "SYSCALL" }
        var syscallName = syscall?.string("SYSCALL")
        if syscallName == nil, let syscall, let arch = syscall.string("arch"), let number = syscall.integer("syscall") {
            syscallName = SyscallNames.name(arch: arch, number: Int(number))
            if let syscallName { fields.add("SYSCALL", syscallName) }
        }
        // /proc and the user database describe this host only: records another host wrote never look there.
        let host = fields.first(FieldName.hostname).map { String(decoding: $0, as: UTF8.self) }
        let local = host == nil || host == Self.localHostName
        ProcessFields.add(
            to: &fields, records: records, syscall: syscallName, processes: &processes, local: local, live: liveProcesses && local)
        for r in records {
            fields.add("type", r.type)
            fields.append(contentsOf: r.fields)
        }
        return Event(time: head.time > 0 ? head.time : carrier.time, position: carrier.position, fields: fields)
    }

    /// A laurel event (one JSON object per audit event: `{"ID":"SEC.MSEC:SERIAL","SYSCALL":{…},
    /// "EXECVE":{…},"PATH":[…],…}`, flattened to `SYSCALL.exe`, `EXECVE.ARGV`, …) as the same
    /// fields the records would have given.
    private mutating func laurelEvent(_ event: Event) -> Event? {
        guard !event.fields.contains(FieldName.message), let id = event.fields.first("ID"), event.fields.count > 1 else { return nil }
        let stamp: (Int64, UInt64, Int)? = (Array(id) + [UInt8(ascii: ")")]).withUnsafeBufferPointer { AuditParser.stamp($0, at: 0) }
        guard let (time, serial, _) = stamp else { return nil }
        var records: [(type: String, fields: [(name: String, value: [UInt8])])] = []
        var byType: [String: Int] = [:]
        var parentExe: [UInt8]?
        for k in 0..<event.fields.count {
            let full = event.fields.name(at: k)
            guard let dot = full.firstIndex(of: ".") else { continue }
            let type = String(full[..<dot])
            guard type.allSatisfy({ $0.isUppercase || $0 == "_" }) else { continue }
            var name = String(full[full.index(after: dot)...])
            var value = Array(event.fields.value(at: k))
            if type == "SYSCALL", name == "PPID.exe" {
                parentExe = value
                continue
            }
            if name.contains(".") { continue }
            if byType[type] == nil {
                byType[type] = records.count
                records.append((type, []))
            }
            let r = byType[type]!
            if name == "ARGV" {
                switch type {
                case "EXECVE":
                    let n = records[r].fields.filter { AuditParser.isArgument($0.name) }.count
                    name = "a\(n)"
                case "PROCTITLE":
                    if let at = records[r].fields.firstIndex(where: { $0.name == "proctitle" }) {
                        records[r].fields[at].value += [0x20] + value
                        continue
                    }
                    name = "proctitle"
                case "SYSCALL":
                    let n = records[r].fields.filter { AuditParser.isArgument($0.name) }.count
                    name = "a\(n)"
                    if value.starts(with: "0x".utf8) { value.removeFirst(2) }
                default: break
                }
            }
            if name == "arch", value.starts(with: "0x".utf8) { value.removeFirst(2) }
            records[r].fields.append((name, value))
        }
        guard records.contains(where: { $0.type == "SYSCALL" || $0.type == "EXECVE" || !$0.fields.isEmpty }) else { return nil }
        let joined = records.map { r in
            var text = Array("type=\(r.type)".utf8)
            var fields = EventFields()
            for (name, value) in r.fields {
                text += Array(" \(name)=".utf8)
                text += value
                fields.add(name, bytes: value)
            }
            return AuditRecord(type: r.type, time: time, serial: serial, fields: fields, text: text)
        }
        var assembled = assemble(joined, carrier: event)
        if let parentExe, !assembled.fields.contains(ProcessFields.parentImage) {
            assembled.fields.add(ProcessFields.parentImage, bytes: parentExe)
        }
        return assembled
    }
}

/// Process creation fields for an audit event that ran a program (an EXECVE record, or a
/// successful execve/execveat SYSCALL), named as ECS names them; `Rules/pipelines/audit.yml`
/// maps Sigma's process_creation fields onto them.
package enum ProcessFields {
    package static let category = "EVENT_CATEGORY"
    package static let image = "process.executable"
    package static let commandLine = "process.command_line"
    package static let currentDirectory = "process.working_directory"
    package static let pid = "process.pid"
    package static let parentPid = "process.parent.pid"
    package static let parentImage = "process.parent.executable"
    package static let parentCommandLine = "process.parent.command_line"
    package static let user = "user.name"
    package static let userID = "user.id"
    package static let logonID = "user.audit.id"

    /// `local`: the records are this host's, so its user database names their uids; `live`: and
    /// its /proc shows their running parents.
    static func add(
        to fields: inout EventFields, records: [AuditRecord], syscall name: String?, processes: inout ProcessTable, local: Bool,
        live: Bool
    ) {
        guard let syscall = records.first(where: { $0.type == "SYSCALL" }) else { return }
        let execve = records.first { $0.type == "EXECVE" }
        if execve == nil {
            guard name == "execve" || name == "execveat", syscall.first("success")?.elementsEqual("yes".utf8) == true else { return }
        }
        fields.add(category, "process_creation")
        let image = Array(syscall.first("exe") ?? records.first { $0.type == "PATH" }?.first("name") ?? [])
        fields.add(Self.image, bytes: image)
        let commandLine = execve.map(arguments) ?? records.first { $0.type == "PROCTITLE" }?.first("proctitle").map(title) ?? image
        fields.add(Self.commandLine, bytes: commandLine)
        if let cwd = records.first(where: { $0.type == "CWD" })?.first("cwd") { fields.add(currentDirectory, bytes: cwd) }
        let pid = syscall.integer("pid").flatMap { Int32(exactly: $0) }
        if let pid { fields.add(Self.pid, String(pid)) }
        if let ppid = syscall.integer("ppid").flatMap({ Int32(exactly: $0) }) {
            fields.add(parentPid, String(ppid))
            if let parent = processes.lookup(ppid, live: live) {
                fields.add(parentImage, bytes: parent.image)
                fields.add(parentCommandLine, bytes: parent.commandLine)
            }
        }
        if let uid = syscall.first("uid") {
            fields.add(userID, bytes: uid)
            // The enriched record names the user as the writing host knew it; else this host's name for the uid.
            if let named = syscall.first("UID") {
                fields.add(user, bytes: named)
            } else if local, let id = syscall.integer("uid").flatMap({ UInt32(exactly: $0) }), let known = UserNames.name(of: id) {
                fields.add(user, known)
            }
        }
        // The login uid, unless unset (4294967295: a process no login started, such as a daemon).
        if let auid = syscall.first("auid"), !auid.elementsEqual("4294967295".utf8), !auid.elementsEqual("-1".utf8) {
            fields.add(logonID, bytes: auid)
        }
        if let pid { processes.record(pid, image: image, commandLine: commandLine) }
    }

    /// argv from an EXECVE record: `a0`…`a(argc-1)`, long arguments joined from their `aN[k]` parts.
    static func arguments(_ r: AuditRecord) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(r.fields.storage.count)
        // auditd writes a0, a1, … (and a long one's parts aN[0], aN[1], …) in order; anything else is sorted first.
        var parts: [(n: Int, value: ArraySlice<UInt8>)] = []
        var ordered = true
        for k in 0..<r.fields.count {
            let name = r.fields.name(at: k)
            guard AuditParser.isArgument(name), let n = argumentNumber(name) else { continue }
            if let last = parts.last, last.n > n { ordered = false }
            parts.append((n, r.fields.value(at: k)))
        }
        if !ordered { parts.sort { $0.n < $1.n } }
        let argc = r.integer("argc").map { Int(clamping: $0) } ?? (parts.last.map { $0.n + 1 } ?? 0)
        let limit = min(argc, 4096)
        // `at` is the argument `out` ends in; each step to the next one is a space (a missing one is empty).
        var at = 0
        for (n, value) in parts where n < limit {
            while at < n {
                out.append(0x20)
                at += 1
            }
            out += value
        }
        while at < limit - 1 {
            out.append(0x20)
            at += 1
        }
        return out
    }

    /// The N of `aN` or `aN[k]`.
    static func argumentNumber(_ name: String) -> Int? {
        var n = 0
        for c in name.utf8.dropFirst() {
            guard c >= 48, c <= 57 else { break }
            n = n &* 10 &+ Int(c - 48)
        }
        return n
    }

    /// A decoded proctitle: argv separated by NUL bytes.
    static func title(_ v: some Collection<UInt8>) -> [UInt8] {
        var t = Array(v)
        while t.last == 0 { t.removeLast() }
        return t.map { $0 == 0 ? 0x20 : $0 }
    }
}

/// Programs recently started, by pid, for the parent fields of later ones; bounded (oldest out).
package struct ProcessTable: Sendable {
    package struct Process: Sendable {
        var image: [UInt8]
        var commandLine: [UInt8]
    }

    private var byPID: [Int32: Process] = [:]
    private var order: [Int32] = []
    private var head = 0
    package var capacity = 16_384

    package init() {}

    package var count: Int { byPID.count }

    mutating func record(_ pid: Int32, image: [UInt8], commandLine: [UInt8]) {
        if byPID.updateValue(Process(image: image, commandLine: commandLine), forKey: pid) == nil { order.append(pid) }
        while byPID.count > capacity, head < order.count {
            byPID[order[head]] = nil
            head += 1
        }
        if head > 4096, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }

    /// An exec seen earlier for `pid`, else (live, on this host) what /proc says runs there now.
    func lookup(_ pid: Int32, live: Bool) -> Process? {
        if let p = byPID[pid] { return p }
        guard live, pid > 0 else { return nil }
        guard let exe = Self.readLink("/proc/\(pid)/exe") else { return nil }
        let cmdline = Self.read("/proc/\(pid)/cmdline").map(ProcessFields.title) ?? []
        return Process(image: exe, commandLine: cmdline)
    }

    static func readLink(_ path: String) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBufferPointer { b in
            b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { readlink(path, $0, b.count) }
        }
        guard n > 0 else { return nil }
        return Array(buffer[..<n])
    }

    static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 8192)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return Array(buffer[..<n])
    }
}

/// This host's user names by uid (getpwuid_r), remembered.
enum UserNames {
    private static let known = Mutex<[UInt32: String?]>([:])

    static func name(of uid: UInt32) -> String? {
        if let cached = known.withLock({ $0[uid] }) { return cached }
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        let name: String? =
            getpwuid_r(uid, &pwd, &buffer, buffer.count, &result) == 0 && result != nil ? String(cString: pwd.pw_name) : nil
        known.withLock { if $0.count < 65_536 { $0[uid] = name } }
        return name
    }
}

/// Sysmon for Linux events as it writes them to syslog: one XML `<Event>` per message. Process
/// creation (EventID 1) becomes the process fields audit events carry; file creation (11) and
/// network connections (3) keep Sysmon's field names, which the Sigma rules use.
package enum SysmonEvent {
    static let categories: [String: String] = ["1": "process_creation", "3": "network_connection", "11": "file_event"]
    static let processFields: [String: String] = [
        "Image": ProcessFields.image, "CommandLine": ProcessFields.commandLine, "CurrentDirectory": ProcessFields.currentDirectory,
        "User": ProcessFields.user, "ProcessId": ProcessFields.pid, "ParentProcessId": ProcessFields.parentPid,
        "ParentImage": ProcessFields.parentImage, "ParentCommandLine": ProcessFields.parentCommandLine, "LogonId": ProcessFields.logonID,
    ]

    /// Adds the event's fields to `event` when its MESSAGE is a Sysmon for Linux event; false otherwise.
    static func read(into event: inout Event) -> Bool {
        guard let message = event.fields.first(FieldName.message), message.first == UInt8(ascii: "<"),
            message.starts(with: "<Event>".utf8) || message.starts(with: "<Event ".utf8)
        else { return false }
        let text = String(decoding: message, as: UTF8.self)
        guard text.contains("Linux-Sysmon"), let id = element(text, "EventID"), let category = categories[id] else { return false }
        var f = event.fields
        f.add(ProcessFields.category, category)
        f.add("EventID", id)
        var rest = Substring(text)
        while let open = rest.firstRange(of: "<Data Name=\"") {
            rest = rest[open.upperBound...]
            guard let q = rest.firstIndex(of: "\"") else { break }
            let name = String(rest[..<q])
            rest = rest[rest.index(after: q)...]
            if rest.hasPrefix("/>") { continue }
            guard let gt = rest.firstIndex(of: ">"), let end = rest.firstRange(of: "</Data>") else { break }
            let value = unescape(String(rest[rest.index(after: gt)..<end.lowerBound]))
            rest = rest[end.upperBound...]
            if category == "process_creation", let mapped = processFields[name] {
                f.add(mapped, value)
            } else {
                f.add(name, value)
            }
        }
        event.fields = f
        return true
    }

    static func element(_ text: String, _ name: String) -> String? {
        guard let open = text.firstRange(of: "<\(name)>"), let close = text[open.upperBound...].firstRange(of: "</\(name)>")
        else { return nil }
        return String(text[open.upperBound..<close.lowerBound])
    }

    static func unescape(_ s: String) -> String {
        guard s.contains("&") else { return s }
        return s.replacing("&lt;", with: "<").replacing("&gt;", with: ">").replacing("&quot;", with: "\"")
            .replacing("&apos;", with: "'").replacing("&amp;", with: "&")
    }
}
