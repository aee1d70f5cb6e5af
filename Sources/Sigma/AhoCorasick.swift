/// A case-insensitive (ASCII) multi-pattern automaton: one pass over a value finds every
/// pattern it contains, so prefiltering cost does not grow with the number of rules.
package struct AhoCorasick: Sendable {
    private let classOf: [UInt8]
    private let classCount: Int
    /// Transitions: `delta[s + class]` for a state at offset `s` (its number times
    /// `classCount`), giving the next state's offset, or its offset's complement (negative)
    /// when patterns end there. A step is one add and one load, and the test for output costs
    /// a sign check instead of two more loads.
    private let delta: [Int32]
    /// Pattern ids ending at each state: `outputIDs[outputStart[s] ..< outputStart[s + 1]]`.
    private let outputStart: [Int32]
    private let outputIDs: [Int32]
    package let patternCount: Int

    /// `patterns` must already be lower-case ASCII.
    package init(patterns: [[UInt8]]) {
        patternCount = patterns.count
        // Compress the alphabet: bytes that occur in no pattern share one class.
        var classes = [UInt8](repeating: 0, count: 256)
        var next: UInt8 = 1
        for p in patterns {
            for c in p where classes[Int(c)] == 0 {
                classes[Int(c)] = next
                next += 1
            }
        }
        for c in 65...90 where classes[c + 32] != 0 { classes[c] = classes[c + 32] }
        let k = Int(next)
        classOf = classes
        classCount = k

        // The trie, one row of `k` entries per state (-1: no edge), in one array.
        var goto = [Int32](repeating: -1, count: k)
        var out: [[Int32]] = [[]]
        for (id, p) in patterns.enumerated() {
            var s = 0
            for c in p {
                let cls = Int(classes[Int(c)])
                if goto[s * k + cls] < 0 {
                    goto[s * k + cls] = Int32(out.count)
                    goto.append(contentsOf: repeatElement(-1, count: k))
                    out.append([])
                }
                s = Int(goto[s * k + cls])
            }
            out[s].append(Int32(id))
        }
        let states = out.count
        precondition(states * k <= Int(Int32.max), "automaton too large")
        var fail = [Int32](repeating: 0, count: states)
        var table = [Int32](repeating: 0, count: states * k)
        var queue: [Int] = []
        for cls in 0..<k {
            let t = goto[cls]
            if t > 0 {
                table[cls] = t
                queue.append(Int(t))
            }
        }
        var head = 0
        while head < queue.count {
            let s = queue[head]
            head += 1
            out[s] += out[Int(fail[s])]
            for cls in 0..<k {
                let t = goto[s * k + cls]
                if t > 0 {
                    fail[Int(t)] = table[Int(fail[s]) * k + cls]
                    table[s * k + cls] = t
                    queue.append(Int(t))
                } else {
                    table[s * k + cls] = table[Int(fail[s]) * k + cls]
                }
            }
        }
        let hasOutput = out.map { !$0.isEmpty }
        delta = table.map { t in
            let offset = t &* Int32(k)
            return hasOutput[Int(t)] ? ~offset : offset
        }
        var starts: [Int32] = [0]
        var ids: [Int32] = []
        for o in out {
            ids += o
            starts.append(Int32(ids.count))
        }
        outputStart = starts
        outputIDs = ids
    }

    /// Calls `hit` with the id of each pattern occurrence in `value` (an id may repeat).
    @inline(__always)
    package func scan(_ value: UnsafeBufferPointer<UInt8>, _ hit: (Int32) -> Void) {
        classOf.withUnsafeBufferPointer { classOf in
            delta.withUnsafeBufferPointer { delta in
                outputStart.withUnsafeBufferPointer { starts in
                    outputIDs.withUnsafeBufferPointer { ids in
                        var s = 0
                        let k = classCount
                        for c in value {
                            let t = Int(delta[s &+ Int(classOf[Int(c)])])
                            if t >= 0 {
                                s = t
                                continue
                            }
                            s = ~t
                            let state = s / k
                            for j in Int(starts[state])..<Int(starts[state &+ 1]) { hit(ids[j]) }
                        }
                    }
                }
            }
        }
    }
}
