import Findings
import Synchronization

/// Findings waiting for the worker: bounded, most severe first, each with a deadline.
///
/// `offer` never blocks detection. When the queue is full the least severe finding (the new one
/// or one already waiting) is shed and handed back, keeping its built-in triage.
package final class TriageQueue: Sendable {
    package struct Entry: Sendable {
        package var finding: Finding
        package var priority: Int
        package var serial: UInt64
        package var enqueued: ContinuousClock.Instant
        package var deadline: ContinuousClock.Instant
    }

    private struct State: ~Copyable {
        var heap: [Entry] = []
        var serial: UInt64 = 0
        var finished = false
        var inFlight = 0
    }

    private let state = Mutex(State())
    package let capacity: Int

    package init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Queues `finding`; returns the finding shed to make room, if any.
    package func offer(_ finding: Finding, now: ContinuousClock.Instant, deadline: Duration) -> Finding? {
        state.withLock { s in
            s.serial += 1
            let entry = Entry(
                finding: finding, priority: finding.triage.riskScore, serial: s.serial, enqueued: now, deadline: now + deadline)
            if s.heap.count < capacity {
                Self.push(entry, &s.heap)
                return nil
            }
            // Full: the least urgent of the waiting ones and the new one is shed.
            var lowest = 0
            for i in s.heap.indices where Self.before(s.heap[lowest], s.heap[i]) { lowest = i }
            guard Self.before(entry, s.heap[lowest]) else { return entry.finding }
            let shed = s.heap[lowest].finding
            Self.remove(at: lowest, &s.heap)
            Self.push(entry, &s.heap)
            return shed
        }
    }

    /// What a consumer gets: a batch to send (most urgent first), findings whose deadline
    /// passed while they waited, and whether the queue is finished and empty.
    package struct Take: Sendable {
        package var batch: [Entry] = []
        package var expired: [Entry] = []
        package var done = false
    }

    /// Takes a batch once `batchSize` findings wait, or the oldest has waited `maxWait`, or the
    /// queue is finishing; otherwise an empty batch.
    package func take(batchSize: Int, maxWait: Duration, now: ContinuousClock.Instant) -> Take {
        state.withLock { s in
            var t = Take()
            if s.heap.contains(where: { $0.deadline <= now }) {
                var keep: [Entry] = []
                for e in s.heap { if e.deadline <= now { t.expired.append(e) } else { keep.append(e) } }
                s.heap = []
                for e in keep { Self.push(e, &s.heap) }
            }
            if s.heap.isEmpty {
                t.done = s.finished && s.inFlight == 0
                return t
            }
            let oldest = s.heap.map(\.enqueued).min()!
            guard s.heap.count >= batchSize || now - oldest >= maxWait || s.finished else { return t }
            while t.batch.count < batchSize, let e = Self.pop(&s.heap) { t.batch.append(e) }
            s.inFlight += 1
            return t
        }
    }

    /// A consumer finished the batch it took.
    package func settled() {
        state.withLock { $0.inFlight -= 1 }
    }

    /// No more findings will be offered: waiting ones go out without waiting for a full batch.
    package func finish() {
        state.withLock { $0.finished = true }
    }

    /// Whether `a` is more urgent than `b`: higher score first, then earlier detection.
    private static func before(_ a: Entry, _ b: Entry) -> Bool {
        a.priority != b.priority ? a.priority > b.priority : a.serial < b.serial
    }

    private static func push(_ e: Entry, _ h: inout [Entry]) {
        h.append(e)
        siftUp(h.count - 1, &h)
    }

    private static func siftUp(_ start: Int, _ h: inout [Entry]) {
        var i = start
        while i > 0 {
            let p = (i - 1) / 2
            guard before(h[i], h[p]) else { break }
            h.swapAt(i, p)
            i = p
        }
    }

    private static func pop(_ h: inout [Entry]) -> Entry? {
        guard !h.isEmpty else { return nil }
        h.swapAt(0, h.count - 1)
        let top = h.removeLast()
        siftDown(0, &h)
        return top
    }

    private static func remove(at index: Int, _ h: inout [Entry]) {
        h.swapAt(index, h.count - 1)
        h.removeLast()
        guard index < h.count else { return }
        siftDown(index, &h)
        siftUp(index, &h)
    }

    private static func siftDown(_ start: Int, _ h: inout [Entry]) {
        var i = start
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var m = i
            if l < h.count, before(h[l], h[m]) { m = l }
            if r < h.count, before(h[r], h[m]) { m = r }
            if m == i { return }
            h.swapAt(i, m)
            i = m
        }
    }
}
