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
        let noEdges = [Int32](repeating: -1, count: k)
        var goto = noEdges
        var out: [[Int32]] = [[]]
        for (id, p) in patterns.enumerated() {
            var s = 0
            for c in p {
                let cls = Int(classes[Int(c)])
                if goto[s * k + cls] < 0 {
                    goto[s * k + cls] = Int32(out.count)
                    out.append([])
                    goto += noEdges
                }
                s = Int(goto[s * k + cls])
            }
            out[s].append(Int32(id))
        }
        let states = out.count
        precondition(states * k <= Int(Int32.max), "automaton too large")
        var fail = [Int32](repeating: 0, count: states)
        var table = [Int32](repeating: 0, count: states * k)
        // Breadth first, so that a state's failure state is complete before the state is.
        var queue = [Int](repeating: 0, count: states)
        var tail = 0
        goto.withUnsafeBufferPointer { goto in
            table.withUnsafeMutableBufferPointer { table in
                fail.withUnsafeMutableBufferPointer { fail in
                    for cls in 0..<k where goto[cls] > 0 {
                        table[cls] = goto[cls]
                        queue[tail] = Int(goto[cls])
                        tail += 1
                    }
                    var head = 0
                    while head < tail {
                        let s = queue[head]
                        head += 1
                        let row = s * k
                        let failRow = Int(fail[s]) * k
                        for cls in 0..<k {
                            let t = goto[row + cls]
                            if t > 0 {
                                fail[Int(t)] = table[failRow + cls]
                                table[row + cls] = t
                                queue[tail] = Int(t)
                                tail += 1
                            } else {
                                table[row + cls] = table[failRow + cls]
                            }
                        }
                    }
                }
            }
        }
        // A state's outputs include its failure state's (failure states come earlier in the queue).
        for s in queue[0..<tail] where !out[Int(fail[s])].isEmpty { out[s] += out[Int(fail[s])] }
        let hasOutput = out.map { !$0.isEmpty }
        // The table becomes `delta` in place: state numbers to offsets, complemented where
        // patterns end.
        hasOutput.withUnsafeBufferPointer { hasOutput in
            table.withUnsafeMutableBufferPointer { table in
                for i in table.indices {
                    let offset = table[i] &* Int32(k)
                    table[i] = hasOutput[Int(table[i])] ? ~offset : offset
                }
            }
        }
        delta = table
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
