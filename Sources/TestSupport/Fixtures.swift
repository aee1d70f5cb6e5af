import Daemon
import EventModel
import Findings
import Foundation
import Ingest
import Sigma

/// Paths and helpers shared by the test targets.
package enum Fixtures {
    /// The package root (the folder holding Package.swift).
    package static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url.path }
        }
        return FileManager.default.currentDirectoryPath
    }()

    /// The shared corpora and rule sets beside the checkout (`../shared`).
    package static var shared: String {
        URL(fileURLWithPath: repositoryRoot).deletingLastPathComponent().appendingPathComponent("shared").path
    }

    package static var rulesDirectory: String { repositoryRoot + "/Rules" }

    package static func bundledPipeline() throws -> Pipeline { try Pipeline.load(directory: rulesDirectory + "/pipelines") }

    /// The built `logtriage` binary next to the test bundle.
    package static var binary: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("logtriage").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir.deleteLastPathComponent()
        }
        return repositoryRoot + "/.build/debug/logtriage"
    }

    /// Parses one syslog line.
    package static func syslog(_ line: String, year: Int = 2024) -> Event {
        var parser = SyslogParser(year: year, referenceTime: 0, zone: .utc)
        var bytes = Array(line.utf8)
        return bytes.withUnsafeMutableBufferPointer { buf in
            parser.parse(UnsafeBufferPointer(buf), position: SourcePosition(source: "test", line: 1, offset: 0)).event
        }
    }

    /// Writes `contents` to a fresh temporary file and returns its path.
    package static func temporaryFile(_ contents: [UInt8], suffix: String = ".log") throws -> String {
        let path = NSTemporaryDirectory() + "logtriage-test-\(UUID().uuidString)\(suffix)"
        try Data(contents).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Reads every event of a file.
    package static func readAll(_ path: String, options: ReaderOptions = ReaderOptions()) throws -> ([Event], ReadStatistics) {
        var reader = try EventReader(path: path, options: options)
        var events: [Event] = []
        while let e = try reader.next() { events.append(e) }
        return (events, reader.statistics)
    }

    /// A rule set compiled from rule YAML text, with the bundled pipelines.
    package static func ruleSet(_ yaml: String) throws -> (RuleSet, LoadReport) {
        let path = try temporaryFile(Array(yaml.utf8), suffix: ".yml")
        defer { try? FileManager.default.removeItem(atPath: path) }
        return RuleSet.load(paths: [path], pipeline: try bundledPipeline())
    }

    /// The findings the bundled rules raise on syslog `lines`, triaged as `triage` says.
    package static func findings(_ lines: [String], triage: TriageMode = .builtin) throws -> [Finding] {
        var config = ScanConfiguration()
        config.reader.year = 2024
        config.triage = triage
        return try ScanPipeline(configuration: config).findings(of: lines)
    }

    /// Runs a command and returns its exit status, standard output and standard error.
    /// `environment` adds to (or overrides) this process's variables.
    package static func run(
        _ executable: String, _ arguments: [String], stdin: Data? = nil, environment: [String: String] = [:]
    ) throws -> (Int32, Data, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let input = Pipe()
        p.standardInput = input
        try p.run()
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try input.fileHandleForWriting.close()
        // Drain stderr on a thread so neither pipe fills and blocks the child.
        final class Box: @unchecked Sendable { var data = Data() }  // written before leave(), read after wait()
        let errBox = Box()
        let group = DispatchGroup()
        group.enter()
        let errHandle = err.fileHandleForReading
        DispatchQueue.global().async {
            errBox.data = errHandle.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        let errData = errBox.data
        p.waitUntilExit()
        return (p.terminationStatus, outData, String(decoding: errData, as: UTF8.self))
    }
}
