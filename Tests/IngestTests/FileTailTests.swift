import EventModel
import Foundation
import Ingest
import Testing

@Suite("File tail")
struct FileTailTests {
    /// A scratch directory with helpers that write the way loggers and logrotate do.
    final class Scratch {
        let dir: String
        init() throws {
            dir = NSTemporaryDirectory() + "logtriage-tail-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(atPath: dir) }
        var log: String { dir + "/auth.log" }

        func append(_ text: String, to path: String? = nil) throws {
            let p = path ?? log
            if !FileManager.default.fileExists(atPath: p) { FileManager.default.createFile(atPath: p, contents: nil) }
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: p))
            try h.seekToEnd()
            try h.write(contentsOf: Data(text.utf8))
            try h.close()
        }
    }

    /// Every line available now, as text with its position.
    static func drain(_ tail: inout FileTail) throws -> [(String, SourcePosition, Bool)] {
        var out: [(String, SourcePosition, Bool)] = []
        _ = try tail.poll { line, position, cut in out.append((String(decoding: line, as: UTF8.self), position, cut)) }
        return out
    }

    @Test("complete lines only: a partial line waits for its newline")
    func partialLines() throws {
        let s = try Scratch()
        try s.append("one\ntw")
        var tail = FileTail(path: s.log, checkpoint: nil)
        #expect(try Self.drain(&tail).map(\.0) == ["one"])
        try s.append("o\nthree\r\n")
        let got = try Self.drain(&tail)
        #expect(got.map(\.0) == ["two", "three"])
        #expect(got.map(\.1.line) == [2, 3])
        #expect(got.map(\.1.offset) == [4, 8])
        let offset = tail.checkpoint?.offset
        #expect(offset == 15)
    }

    @Test("a file that appears later is picked up")
    func appearsLater() throws {
        let s = try Scratch()
        var tail = FileTail(path: s.log, checkpoint: nil)
        #expect(try Self.drain(&tail).isEmpty)
        let open = tail.isOpen
        #expect(!open)
        try s.append("hello\n")
        #expect(try Self.drain(&tail).map(\.0) == ["hello"])
    }

    @Test("rename-and-create: the old file is finished, then the new one read from its start")
    func renameAndCreate() throws {
        let s = try Scratch()
        try s.append("a1\na2\n")
        var tail = FileTail(path: s.log, checkpoint: nil)
        #expect(try Self.drain(&tail).map(\.0) == ["a1", "a2"])
        try s.append("a3\na4-no-newline")
        try FileManager.default.moveItem(atPath: s.log, toPath: s.log + ".1")
        try s.append("b1\n")
        #expect(try Self.drain(&tail).map(\.0) == ["a3", "a4-no-newline", "b1"])
        let (statistics, offset) = (tail.statistics, tail.checkpoint?.offset)
        #expect(statistics.rotations == 1)
        #expect(offset == 3)
    }

    @Test("copytruncate: a file shrinking under the offset restarts at 0")
    func copyTruncate() throws {
        let s = try Scratch()
        try s.append("old line one\nold line two\n")
        var tail = FileTail(path: s.log, checkpoint: nil)
        #expect(try Self.drain(&tail).count == 2)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: s.log))
        try h.truncate(atOffset: 0)
        try h.close()
        try s.append("new\n")
        #expect(try Self.drain(&tail).map(\.0) == ["new"])
        let truncations = tail.statistics.truncations
        #expect(truncations == 1)
    }

    @Test("a restart from the checkpoint continues right after the last line handed out")
    func resume() throws {
        let s = try Scratch()
        try s.append("1\n2\n3\n")
        var first = FileTail(path: s.log, checkpoint: nil)
        _ = try first.poll(maxLines: 2) { _, _, _ in }
        let saved = first.checkpoint
        let checkpoint = try #require(saved)
        #expect(checkpoint.offset == 4 && checkpoint.line == 2)
        try s.append("4\n")
        var second = FileTail(path: s.log, checkpoint: checkpoint)
        let got = try Self.drain(&second)
        #expect(got.map(\.0) == ["3", "4"])
        #expect(got.map(\.1.line) == [3, 4])
    }

    @Test("rotated while down: the rest of PATH.1 is read before the new file")
    func rotatedWhileDown() throws {
        let s = try Scratch()
        try s.append("x1\nx2\n")
        var first = FileTail(path: s.log, checkpoint: nil)
        _ = try first.poll(maxLines: 1) { _, _, _ in }
        let saved = first.checkpoint
        let checkpoint = try #require(saved)
        try s.append("x3\n")
        try FileManager.default.moveItem(atPath: s.log, toPath: s.log + ".1")
        try s.append("y1\n")
        var second = FileTail(path: s.log, checkpoint: checkpoint)
        #expect(try Self.drain(&second).map(\.0) == ["x2", "x3", "y1"])
    }

    @Test("a new file that reuses the inode is read from its start (the fingerprint differs)")
    func inodeReuse() throws {
        let s = try Scratch()
        try s.append("first file contents\n")
        var first = FileTail(path: s.log, checkpoint: nil)
        _ = try Self.drain(&first)
        let saved = first.checkpoint
        var checkpoint = try #require(saved)
        // Same device and inode, other content: as after delete and create with a recycled inode.
        checkpoint.fingerprint ^= 1
        var second = FileTail(path: s.log, checkpoint: checkpoint)
        #expect(try Self.drain(&second).map(\.0) == ["first file contents"])
    }

    @Test("a megabyte line is cut at the limit and counted; the next line is intact")
    func longLine() throws {
        let s = try Scratch()
        try s.append(String(repeating: "A", count: 300_000) + "\nshort\n")
        var tail = FileTail(path: s.log, checkpoint: nil, maxLineBytes: 1000)
        let got = try Self.drain(&tail)
        #expect(got.count == 2)
        #expect(got[0].0.count == 1000 && got[0].2)
        #expect(got[1].0 == "short" && !got[1].2)
        #expect(got[1].1.offset == 300_001)
        let cut = tail.statistics.truncatedLines
        #expect(cut == 1)
    }

    @Test("start at the end skips what the file held before")
    func startAtEnd() throws {
        let s = try Scratch()
        try s.append("history\n")
        var tail = FileTail(path: s.log, checkpoint: nil, startAtEnd: true)
        #expect(try Self.drain(&tail).isEmpty)
        try s.append("fresh\n")
        #expect(try Self.drain(&tail).map(\.0) == ["fresh"])
    }
}
