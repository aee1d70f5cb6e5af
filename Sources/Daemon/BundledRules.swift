import Foundation

/// Finds the rules and pipelines that ship with logtriage.
///
/// Looked up in order: `$LOGTRIAGE_RULES_DIR`; `share/logtriage/rules` beside the binary's
/// prefix; a `Rules/` folder above the binary (a source checkout); `/usr/share/logtriage/rules`.
package enum BundledRules {
    package static func directory() -> String? {
        let fm = FileManager.default
        func ok(_ p: String) -> Bool { fm.fileExists(atPath: p + "/pipelines") }
        if let env = ProcessInfo.processInfo.environment["LOGTRIAGE_RULES_DIR"], ok(env) { return env }
        let exe = (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        let share = dir.deletingLastPathComponent().appendingPathComponent("share/logtriage/rules").path
        if ok(share) { return share }
        for _ in 0..<6 {
            let candidate = dir.appendingPathComponent("Rules").path
            if ok(candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        if ok("/usr/share/logtriage/rules") { return "/usr/share/logtriage/rules" }
        return nil
    }

    package struct NotFound: Error, CustomStringConvertible {
        package var description: String {
            "bundled rules not found: set LOGTRIAGE_RULES_DIR, or install them to /usr/share/logtriage/rules"
        }
    }

    package static func require() throws -> String {
        guard let d = directory() else { throw NotFound() }
        return d
    }
}
