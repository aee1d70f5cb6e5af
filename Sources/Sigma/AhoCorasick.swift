/// A case-insensitive (ASCII) multi-pattern automaton: one pass over a value finds every
/// pattern it contains, so prefiltering cost does not grow with the number of rules.
package struct AhoCorasick: Sendable {
    private let classOf: [UInt8]
    /// Transitions: `delta[(s << shift) + class]` for state `s` gives the next state's number,
    /// or its complement (negative) when patterns end there, so that the test for output is a
    /// sign check. The entries are 16-bit when the states allow (`narrow`), else 32-bit
    /// (`wide`): half the table, and twice the entries per cache line, for the usual automaton.
    private let narrow: [Int16]
    private let wide: [Int32]
    private let shift: Int
    /// The longest pattern's length.
    private let longest: Int
    /// Pattern ids ending at each state: `outputIDs[outputStart[s] ..< outputStart[s + 1]]`.
    private let outputStart: [Int32]
    private let outputIDs: [Int32]
    package let patternCount: Int

    /// `patterns` must already be lower-case ASCII. With `classLimit`, the automaton may
    /// report a pattern that is not there (never miss one that is): the bytes of the patterns
    /// beyond the `classLimit - 2` most used share one class, which keeps each state's row
    /// within `classLimit` entries. For a prefilter whose candidates are checked in full.
    package init(patterns: [[UInt8]], classLimit: Int? = nil) {
        patternCount = patterns.count
        longest = patterns.map(\.count).max() ?? 0
        // Compress the alphabet: bytes that occur in no pattern share one class.
        var classes = [UInt8](repeating: 0, count: 256)
        var next: UInt8 = 1
        var uses = [Int](repeating: 0, count: 256)
        for p in patterns {
            for c in p { uses[Int(c)] += 1 }
        }
        let used = (0..<256).filter { uses[$0] > 0 }
        if let classLimit, used.count + 1 > classLimit {
            let kept = used.sorted { uses[$0] > uses[$1] }.prefix(classLimit - 2)
            for c in kept {
                classes[c] = next
                next += 1
            }
            for c in used where classes[c] == 0 { classes[c] = next }
            next += 1
        } else {
            for p in patterns {
                for c in p where classes[Int(c)] == 0 {
                    classes[Int(c)] = next
                    next += 1
                }
            }
        }
        for c in 65...90 where classes[c + 32] != 0 { classes[c] = classes[c + 32] }
        let k = Int(next)
        classOf = classes

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
        // Renumbered breadth first: the shallow states, where a scan spends most of its steps,
        // lie together at the start of the table. Rows are `1 << shift` entries wide, so a row's
        // offset is its state's number shifted.
        var order = [0]
        order += queue[0..<tail]
        var number = [Int](repeating: 0, count: states)
        for (n, old) in order.enumerated() { number[old] = n }
        var shift = 0
        while 1 << shift < k { shift += 1 }
        self.shift = shift
        func entries<T: FixedWidthInteger & SignedInteger>(_: T.Type) -> [T] {
            var delta = [T](repeating: 0, count: states << shift)
            for (n, old) in order.enumerated() {
                for cls in 0..<k {
                    let target = Int(table[old * k + cls])
                    let t = T(number[target])
                    delta[n << shift + cls] = out[target].isEmpty ? t : ~t
                }
            }
            return delta
        }
        if states <= Int(Int16.max) {
            narrow = entries(Int16.self)
            wide = []
        } else {
            precondition(states << shift <= Int(Int32.max), "automaton too large")
            narrow = []
            wide = entries(Int32.self)
        }
        var starts: [Int32] = [0]
        var ids: [Int32] = []
        for old in order {
            ids += out[old]
            starts.append(Int32(ids.count))
        }
        outputStart = starts
        outputIDs = ids
    }

    /// How much of a literal a screen needs: a value that holds a literal holds its first
    /// `screenLength` bytes. Screening by these pieces lets an automaton split a value into parts
    /// (see `scan`), and keeps its table small; the few more candidates it passes are then
    /// tested in full.
    package static let screenLength = 16

    /// The piece of `literal` a screen looks for (its first `screenLength` bytes).
    package static func screenPiece(_ literal: [UInt8]) -> [UInt8] {
        literal.count <= screenLength ? literal : Array(literal.prefix(screenLength))
    }

    /// Calls `hit` with the id of each pattern occurrence in `value` (an id may repeat).
    @inline(__always)
    package func scan(_ value: UnsafeBufferPointer<UInt8>, _ hit: (Int32) -> Void) {
        if wide.isEmpty {
            narrow.withUnsafeBufferPointer { scan(value, $0, hit) }
        } else {
            wide.withUnsafeBufferPointer { scan(value, $0, hit) }
        }
    }

    /// Walks over parts of a value run interleaved when each part gives a walk at least this
    /// many starts of its own: the step of an automaton waits for the previous one (a load that
    /// depends on a load), so independent walks side by side take little longer than one.
    private static let splitMinimum = 8

    @inline(__always)
    private func scan<T: FixedWidthInteger & SignedInteger>(
        _ value: UnsafeBufferPointer<UInt8>, _ delta: UnsafeBufferPointer<T>, _ hit: (Int32) -> Void
    ) {
        classOf.withUnsafeBufferPointer { classOf in
            outputStart.withUnsafeBufferPointer { starts in
                outputIDs.withUnsafeBufferPointer { ids in
                    let shift = self.shift
                    @inline(__always)
                    func step(_ row: inout Int, _ c: UInt8) {
                        let t = Int(truncatingIfNeeded: delta[row &+ Int(classOf[Int(c)])])
                        if t >= 0 {
                            row = t &<< shift
                            return
                        }
                        let state = ~t
                        row = state &<< shift
                        for j in Int(starts[state])..<Int(starts[state &+ 1]) { hit(ids[j]) }
                    }
                    let n = value.count
                    let overlap = max(longest - 1, 0)
                    // Walks of `steps` steps, walk k starting at k * d (d = steps - overlap): an
                    // occurrence starting in [k * d, (k + 1) * d) ends before k * d + steps, so
                    // the walk that starts at or before it sees it whole (one starting in an
                    // overlap may be reported twice). Four walks where each gets at least
                    // `splitMinimum` starts of its own, else two, else one.
                    var steps = (n + 3 * overlap + 3) / 4
                    if steps - overlap >= Self.splitMinimum {
                        let d = steps - overlap
                        var (a, b, c, e) = (0, 0, 0, 0)
                        var t = 0
                        while t < n - 3 * d {
                            step(&a, value[t])
                            step(&b, value[d &+ t])
                            step(&c, value[2 &* d &+ t])
                            step(&e, value[3 &* d &+ t])
                            t &+= 1
                        }
                        while t < steps {
                            step(&a, value[t])
                            step(&b, value[d &+ t])
                            step(&c, value[2 &* d &+ t])
                            t &+= 1
                        }
                        return
                    }
                    steps = (n + overlap + 1) / 2
                    var a = 0
                    var i = 0
                    if steps - overlap >= Self.splitMinimum {
                        let d = steps - overlap
                        var b = 0
                        while i < n - d {
                            step(&a, value[i])
                            step(&b, value[d &+ i])
                            i &+= 1
                        }
                        while i < steps {
                            step(&a, value[i])
                            i &+= 1
                        }
                        return
                    }
                    while i < n {
                        step(&a, value[i])
                        i &+= 1
                    }
                }
            }
        }
    }
}
