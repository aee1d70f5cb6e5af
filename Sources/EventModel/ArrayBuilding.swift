// `Array(repeating:count:)` and `Array(unsafeUninitializedCapacity:initializingWith:)` allocate
// through a stdlib entry point that is not specialised: each call looks the storage type up at
// run time, about 500 instructions before the allocation itself. `reserveCapacity` and
// `Array(_: UnsafeBufferPointer)` take the specialised path. These builders are for arrays made
// per event; setup code keeps the plain initialisers.

extension Array {
    /// `count` copies of `value`, allocated through the specialised path.
    @inlinable
    package init(filling value: Element, count: Int) {
        self.init()
        reserveCapacity(count)
        for _ in 0..<count { append(value) }
    }
}

extension Array where Element == UInt8 {
    /// The bytes `write` puts down through a pointer into room for `bound`; it returns how many
    /// it wrote. The room is on the stack when small enough; the result is one exact-size copy.
    @inlinable
    package init(writingAtMost bound: Int, _ write: (UnsafeMutablePointer<UInt8>) -> Int) {
        self = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Swift.max(1, bound)) { room in
            let n = write(room.baseAddress!)
            precondition(n <= bound, "wrote past the room")
            return Array(UnsafeBufferPointer(rebasing: room[..<n]))
        }
    }
}
