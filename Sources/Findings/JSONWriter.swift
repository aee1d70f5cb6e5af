/// Appends JSON to a byte buffer with a fixed key order, so output is stable and cheap to build.
///
/// Text from logs is escaped strictly: control characters (including NUL and ESC) become
/// `\u00XX` escapes and invalid UTF-8 becomes U+FFFD, so a consumer never sees raw control bytes.
///
/// The output grows in a buffer the writer owns and fills through a pointer, so a byte costs
/// a store, not an array append with its uniqueness check; the writer cannot be copied.
package struct JSONWriter: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var count = 0
    private var capacity: Int
    /// Per open object or array, innermost in bit 0: whether a member was written (the next one
    /// needs a comma). Nesting is the encoders' own and shallow, far below 64 levels.
    private var written: UInt64 = 0

    package init() {
        capacity = 4096
        base = .allocate(capacity: capacity)
    }

    deinit { base.deallocate() }

    /// The JSON written so far.
    package var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

    /// The JSON written so far; the writer starts over, empty and at the top level.
    package mutating func take() -> [UInt8] {
        defer { removeAll() }
        return bytes
    }

    /// Lends the JSON written so far, where it lies.
    package func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Starts over, empty and at the top level, keeping the buffer: a writer that encodes one
    /// line after another allocates only while its lines grow.
    package mutating func removeAll() {
        count = 0
        written = 0
    }

    /// Ends a line (after a top-level value).
    package mutating func newline() { put(10) }

    private mutating func reserve(_ more: Int) {
        guard count + more > capacity else { return }
        let bigger = max(capacity * 2, count + more)
        let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: bigger)
        moved.initialize(from: base, count: count)
        base.deallocate()
        base = moved
        capacity = bigger
    }

    @inline(__always)
    private mutating func put(_ b: UInt8) {
        if count == capacity { reserve(1) }
        base[count] = b
        count += 1
    }

    @inline(__always)
    private mutating func put(_ b: UnsafeBufferPointer<UInt8>) {
        reserve(b.count)
        if let from = b.baseAddress { Self.copy(from, b.count, to: base + count) }
        count += b.count
    }

    /// Copies `n` bytes; runs of up to 16 (keys, names, numbers, most short values) with two
    /// overlapping moves of a word or less instead of a call to `memcpy`.
    @inline(__always)
    private static func copy(_ from: UnsafePointer<UInt8>, _ n: Int, to: UnsafeMutablePointer<UInt8>) {
        let source = UnsafeRawPointer(from)
        let target = UnsafeMutableRawPointer(to)
        if n > 16 {
            target.copyMemory(from: source, byteCount: n)
        } else if n >= 8 {
            target.storeBytes(of: source.loadUnaligned(as: UInt64.self), as: UInt64.self)
            target.storeBytes(of: source.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self), toByteOffset: n &- 8, as: UInt64.self)
        } else if n >= 4 {
            target.storeBytes(of: source.loadUnaligned(as: UInt32.self), as: UInt32.self)
            target.storeBytes(of: source.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self), toByteOffset: n &- 4, as: UInt32.self)
        } else if n >= 2 {
            target.storeBytes(of: source.loadUnaligned(as: UInt16.self), as: UInt16.self)
            target.storeBytes(of: source.loadUnaligned(fromByteOffset: n &- 2, as: UInt16.self), toByteOffset: n &- 2, as: UInt16.self)
        } else if n == 1 {
            to[0] = from[0]
        }
    }

    private mutating func put(_ b: [UInt8]) {
        b.withUnsafeBufferPointer { put($0) }
    }

    @inline(__always)
    private mutating func separator() {
        if written & 1 != 0 { put(UInt8(ascii: ",")) }
        written |= 1
    }

    private mutating func key(_ k: JSONKey) {
        switch k.text {
        case .plain(let text) where text.hasPointerRepresentation:
            // A key written in the source: plain ASCII, copied without escaping.
            plainKey(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
        case .plain(let text):
            // The scalar form, where utf8Start traps (this compiler keeps one-character literals
            // of JSONKey in pointer form, but the language does not promise it).
            text.withUTF8Buffer { plainKey($0) }
        case .dynamic(let text):
            separator()
            string(text)
            put(UInt8(ascii: ":"))
        }
    }

    /// The comma, `"key":` and the key's bytes after one reserve.
    @inline(__always)
    private mutating func plainKey(_ key: UnsafeBufferPointer<UInt8>) {
        let n = key.count
        reserve(n &+ 4)
        var at = count
        if written & 1 != 0 {
            base[at] = UInt8(ascii: ",")
            at &+= 1
        }
        written |= 1
        base[at] = UInt8(ascii: "\"")
        if let from = key.baseAddress { Self.copy(from, n, to: base + (at &+ 1)) }
        base[at &+ n &+ 1] = UInt8(ascii: "\"")
        base[at &+ n &+ 2] = UInt8(ascii: ":")
        count = at &+ n &+ 3
    }

    /// Writes object members encoded beforehand by `take()`: `"key":value`, comma-separated.
    /// Nothing when `encoded` is empty.
    package mutating func members(_ encoded: [UInt8]) {
        guard !encoded.isEmpty else { return }
        separator()
        encoded.withUnsafeBufferPointer { put($0) }
    }

    package mutating func beginObject(_ k: JSONKey? = nil) {
        if let k { key(k) } else { separator() }
        put(UInt8(ascii: "{"))
        written <<= 1
    }

    package mutating func endObject() {
        written >>= 1
        put(UInt8(ascii: "}"))
    }

    package mutating func beginArray(_ k: JSONKey? = nil) {
        if let k { key(k) } else { separator() }
        put(UInt8(ascii: "["))
        written <<= 1
    }

    package mutating func endArray() {
        written >>= 1
        put(UInt8(ascii: "]"))
    }

    package mutating func field(_ k: JSONKey, _ v: String?) {
        guard let v else { return }
        key(k)
        string(v)
    }

    package mutating func field(_ k: JSONKey, bytes v: some Collection<UInt8>) {
        key(k)
        escaped(v)
    }

    /// A member whose key is text from elsewhere (a log's field name), escaped like its value.
    package mutating func field(key k: UnsafeBufferPointer<UInt8>, bytes v: UnsafeBufferPointer<UInt8>) {
        // The usual plain pair in one pass after one reserve: `,"key":"value"`.
        reserve(k.count &+ v.count &+ 6)
        var at = count
        if written & 1 != 0 {
            base[at] = UInt8(ascii: ",")
            at &+= 1
        }
        base[at] = UInt8(ascii: "\"")
        if Self.copyIfPlain(k, to: base + (at &+ 1)) {
            at &+= k.count &+ 1
            base[at] = UInt8(ascii: "\"")
            base[at &+ 1] = UInt8(ascii: ":")
            if Self.copyIfPlain(v, to: base + (at &+ 3)) {
                base[at &+ 2] = UInt8(ascii: "\"")
                base[at &+ 3 &+ v.count] = UInt8(ascii: "\"")
                count = at &+ 4 &+ v.count
                written |= 1
                return
            }
        }
        // Something to escape: written again, the usual way, over what was copied.
        separator()
        escaped(k)
        put(UInt8(ascii: ":"))
        escaped(v)
    }

    package mutating func field(_ k: JSONKey, _ v: Int?) {
        guard let v else { return }
        key(k)
        integer(Int64(v))
    }

    package mutating func field(_ k: JSONKey, _ v: Int64?) {
        guard let v else { return }
        key(k)
        integer(v)
    }

    /// Writes `v` in decimal, straight into the buffer (at most 20 bytes with the sign).
    private mutating func integer(_ v: Int64) {
        reserve(20)
        if v < 0 {
            base[count] = UInt8(ascii: "-")
            count += 1
        }
        count += DecimalText.digitCount(v.magnitude)
        DecimalText.write(v.magnitude, endingAt: base + count)
    }

    package mutating func field(_ k: JSONKey, _ v: Bool) {
        key(k)
        let text: StaticString = v ? "true" : "false"
        text.withUTF8Buffer { put($0) }
    }

    package mutating func field(_ k: JSONKey, strings v: [String]) {
        beginArray(k)
        for s in v { element(s) }
        endArray()
    }

    package mutating func element(_ v: String) {
        separator()
        string(v)
    }

    /// A string member written in parts: `key` and the opening quote, then `stringPart` and
    /// `stringPart(decimal:)` for each part (escaped like any value), then `endString`.
    package mutating func beginString(_ k: JSONKey) {
        key(k)
        put(UInt8(ascii: "\""))
    }

    package mutating func stringPart(_ s: String) {
        if s.utf8.withContiguousStorageIfAvailable({ escapedContent($0) }) == nil { escapedContent(s.utf8) }
    }

    package mutating func stringPart(_ s: StaticString) {
        s.withUTF8Buffer { escapedContent($0) }
    }

    /// `v` in decimal, inside a string.
    package mutating func stringPart(decimal v: Int) { integer(Int64(v)) }

    package mutating func endString() { put(UInt8(ascii: "\"")) }

    private mutating func string(_ s: String) {
        // The bytes in place (native and small strings have them), without the copy that
        // `withUTF8` on a `var` makes; other strings go byte by byte.
        if s.utf8.withContiguousStorageIfAvailable({ escaped($0) }) == nil { escaped(s.utf8) }
    }

    /// Writes `v` (in quotes when `quoted`) and returns true when it can be written as is
    /// (printable ASCII without `"` and `\`); else writes nothing and returns false. Most
    /// values are plain, and this runs for every string of every finding (see `copyIfPlain`).
    /// A value that turns out not to be plain leaves bytes only past `count`.
    @inline(__always)
    private mutating func putIfPlain(_ v: UnsafeBufferPointer<UInt8>, quoted: Bool) -> Bool {
        let n = v.count
        let quotes = quoted ? 1 : 0
        reserve(n &+ 2 &* quotes)
        guard Self.copyIfPlain(v, to: base + (count &+ quotes)) else { return false }
        if quoted {
            base[count] = UInt8(ascii: "\"")
            base[count &+ n &+ 1] = UInt8(ascii: "\"")
        }
        count &+= n &+ 2 &* quotes
        return true
    }

    /// Copies `v` to `target` (room for `v.count` bytes) and returns whether every byte is
    /// plain (see `putIfPlain`); when not, what it copied is to be dropped. Tested while copied,
    /// a word at a time (the last word may overlap the one before), in one pass; a value of
    /// fewer than eight bytes is tested as one word, padded with a plain byte.
    @inline(__always)
    private static func copyIfPlain(_ v: UnsafeBufferPointer<UInt8>, to target: UnsafeMutablePointer<UInt8>) -> Bool {
        let n = v.count
        guard n > 0, let from = v.baseAddress else { return true }
        let source = UnsafeRawPointer(from)
        let to = UnsafeMutableRawPointer(target)
        let allPlain: UInt64 = 0x8080_8080_8080_8080
        if n >= 8 {
            var plain = allPlain
            var i = 0
            while i &+ 8 <= n {
                let word = source.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                plain &= plainBits(word)
                to.storeBytes(of: word, toByteOffset: i, as: UInt64.self)
                i &+= 8
            }
            if i < n {
                let word = source.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
                plain &= plainBits(word)
                to.storeBytes(of: word, toByteOffset: n &- 8, as: UInt64.self)
            }
            return plain == allPlain
        }
        let word: UInt64
        if n >= 4 {
            let low = source.loadUnaligned(as: UInt32.self)
            let high = source.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self)
            to.storeBytes(of: low, as: UInt32.self)
            to.storeBytes(of: high, toByteOffset: n &- 4, as: UInt32.self)
            word = UInt64(low) | UInt64(high) << 32
        } else if n >= 2 {
            let low = source.loadUnaligned(as: UInt16.self)
            let high = source.loadUnaligned(fromByteOffset: n &- 2, as: UInt16.self)
            to.storeBytes(of: low, as: UInt16.self)
            to.storeBytes(of: high, toByteOffset: n &- 2, as: UInt16.self)
            word = UInt64(low) | UInt64(high) << 16 | 0x6161_6161_0000_0000
        } else {
            target[0] = from[0]
            word = UInt64(from[0]) | 0x6161_6161_6161_6100
        }
        return plainBits(word) == allPlain
    }

    /// The high bit of each byte of `x` that is printable ASCII other than `"` and `\` (see
    /// `SafeText.printableBits`). For a byte below 0x80, + 0x7F after an XOR reaches 0x80 only
    /// when the XOR left it non-zero, and carries into no other byte.
    @inline(__always)
    private static func plainBits(_ x: UInt64) -> UInt64 {
        let notQuote = (x ^ 0x2222_2222_2222_2222) &+ 0x7F7F_7F7F_7F7F_7F7F
        let notBackslash = (x ^ 0x5C5C_5C5C_5C5C_5C5C) &+ 0x7F7F_7F7F_7F7F_7F7F
        return SafeText.printableBits(x) & notQuote & notBackslash
    }

    private static let hex = Array("0123456789abcdef".utf8)

    /// Writes `v` as a JSON string, repairing invalid UTF-8 and escaping control characters.
    package mutating func escaped(_ v: some Collection<UInt8>) {
        let done = v.withContiguousStorageIfAvailable { putIfPlain($0, quoted: true) }
        if done == true { return }
        put(UInt8(ascii: "\""))
        escapedSlowly(v)
        put(UInt8(ascii: "\""))
    }

    /// `escaped` without the quotes: part of a string.
    private mutating func escapedContent(_ v: some Collection<UInt8>) {
        let done = v.withContiguousStorageIfAvailable { putIfPlain($0, quoted: false) }
        if done == true { return }
        escapedSlowly(v)
    }

    /// The escaping of `escaped`, byte by byte, without the quotes.
    private mutating func escapedSlowly(_ v: some Collection<UInt8>) {
        var it = v.makeIterator()
        var pending: UInt8? = nil
        func next() -> UInt8? {
            if let p = pending {
                pending = nil
                return p
            }
            return it.next()
        }
        while let c = next() {
            if c < 0x80 {
                switch c {
                case UInt8(ascii: "\""): put([92, 34])
                case UInt8(ascii: "\\"): put([92, 92])
                case 10: put([92, UInt8(ascii: "n")])
                case 13: put([92, UInt8(ascii: "r")])
                case 9: put([92, UInt8(ascii: "t")])
                case 0..<0x20, 0x7F:
                    put([92, UInt8(ascii: "u"), 48, 48, Self.hex[Int(c >> 4)], Self.hex[Int(c & 15)]])
                default: put(c)
                }
                continue
            }
            // Multi-byte sequence: validate, else emit U+FFFD for the lead byte.
            let need: Int
            var minScalar: UInt32
            var scalar: UInt32
            switch c {
            case 0xC2...0xDF: need = 1; scalar = UInt32(c & 0x1F); minScalar = 0x80
            case 0xE0...0xEF: need = 2; scalar = UInt32(c & 0x0F); minScalar = 0x800
            case 0xF0...0xF4: need = 3; scalar = UInt32(c & 0x07); minScalar = 0x10000
            default:
                put([0xEF, 0xBF, 0xBD])
                continue
            }
            var seq: [UInt8] = [c]
            var ok = true
            for _ in 0..<need {
                guard let d = next() else { ok = false; break }
                if d & 0xC0 != 0x80 {
                    pending = d
                    ok = false
                    break
                }
                seq.append(d)
                scalar = scalar << 6 | UInt32(d & 0x3F)
            }
            if ok, scalar >= minScalar, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) {
                // C1 controls and the line/paragraph separators are escaped too.
                if (0x80...0x9F).contains(scalar) || scalar == 0x2028 || scalar == 0x2029 {
                    put(Array("\\u\(String(scalar, radix: 16).leftPadded(4))".utf8))
                } else {
                    put(seq)
                }
            } else {
                put([0xEF, 0xBF, 0xBD])
            }
        }
    }
}

/// An object key: a literal in the source (plain ASCII, written as is) or text from elsewhere
/// (a field name from a log, escaped like any value).
package struct JSONKey: ExpressibleByStringLiteral {
    enum Text {
        case plain(StaticString)
        case dynamic(String)
    }

    let text: Text

    /// A key written in the source; it must be plain ASCII without `"` or `\` (it is not escaped).
    package init(stringLiteral value: StaticString) { text = .plain(value) }

    package init(_ text: String) { self.text = .dynamic(text) }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
