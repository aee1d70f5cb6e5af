import EventModel
import Findings
import Sigma

/// Flags log text written to instruct a language model: override phrases ("ignore previous
/// instructions"), chat-template tokens, fake triage fields and data-fence markers, and terminal
/// escape sequences. Such text stays data either way; the flag tells the analyst that someone
/// tried, which is itself worth knowing.
package struct InjectionScreen: Sendable {
    package enum Reason: String, Sendable, CaseIterable {
        case overridePhrase = "instruction override phrase"
        case chatTemplate = "chat template token"
        case fakeTriage = "text imitating triage output"
        case fenceMarker = "data fence marker"
        case terminalEscape = "terminal escape sequence"
    }

    private static let phrases: [(String, Reason)] = [
        ("ignore previous", .overridePhrase), ("ignore all previous", .overridePhrase), ("ignore the above", .overridePhrase),
        ("ignore prior", .overridePhrase), ("ignore your instructions", .overridePhrase), ("ignore all instructions", .overridePhrase),
        ("disregard previous", .overridePhrase), ("disregard the above", .overridePhrase), ("disregard all", .overridePhrase),
        ("disregard your", .overridePhrase), ("forget previous", .overridePhrase), ("forget your instructions", .overridePhrase),
        ("forget all previous", .overridePhrase), ("new instructions:", .overridePhrase), ("system prompt", .overridePhrase),
        ("you are now", .overridePhrase), ("as an ai", .overridePhrase), ("language model", .overridePhrase),
        ("override the triage", .overridePhrase), ("mark as benign", .fakeTriage), ("mark this as benign", .fakeTriage),
        ("mark benign", .fakeTriage), ("classify as benign", .fakeTriage), ("is benign", .fakeTriage),
        ("\"risk_score\"", .fakeTriage), ("\"verdict\"", .fakeTriage), ("risk_score:", .fakeTriage), ("verdict:", .fakeTriage),
        ("<|im_start|>", .chatTemplate), ("<|im_end|>", .chatTemplate), ("<|system|>", .chatTemplate), ("<|user|>", .chatTemplate),
        ("<|assistant|>", .chatTemplate), ("<|eot_id|>", .chatTemplate), ("<|start_header_id|>", .chatTemplate),
        ("<|endoftext|>", .chatTemplate), ("[inst]", .chatTemplate), ("[/inst]", .chatTemplate), ("<<sys>>", .chatTemplate),
        ("</s>", .chatTemplate), ("### instruction", .chatTemplate), ("### system", .chatTemplate), ("\nsystem:", .chatTemplate),
        ("findings_data", .fenceMarker), ("end of data", .fenceMarker), ("end of findings", .fenceMarker),
        ("\u{1B}", .terminalEscape),
    ]

    private let automaton: AhoCorasick
    /// Per phrase, the bit of its reason (bit i: `Reason.allCases[i]`).
    private let reasonBits: [UInt8]
    /// This screen's tag in the marks it writes (bits 24 to 30, from its words): a screen
    /// looking for other words reads an event anew rather than take bits that mean other words.
    private let tag: UInt32

    /// `words` (lower case, at most 16) are looked for in the same walk as the phrases, for a
    /// caller that wants to know more of each message (see `flag(_:accept:)`): one pass over
    /// the message instead of two.
    package init(words: [String] = []) {
        precondition(words.count <= 16, "at most 16 words")
        automaton = AhoCorasick(patterns: Self.phrases.map { Array($0.0.utf8) } + words.map { Array($0.utf8) })
        reasonBits = Self.phrases.map { 1 << UInt8(Reason.allCases.firstIndex(of: $0.1)!) }
        var h = FNV1a()
        for w in words { h.combine(Array(w.utf8) + [0]) }
        tag = UInt32(truncatingIfNeeded: h.value % 127) << 24
    }

    /// The reasons in `text` as bits, and the words (bit k: `words[k]`), in one pass.
    private func scan(_ text: UnsafeBufferPointer<UInt8>) -> (reasons: UInt8, words: UInt64) {
        var reasons: UInt8 = 0
        var words: UInt64 = 0
        reasonBits.withUnsafeBufferPointer { bits in
            automaton.scan(text) { id in
                let i = Int(id)
                if i < bits.count { reasons |= bits[i] } else { words |= 1 << UInt64(i - bits.count) }
            }
        }
        return (reasons, words)
    }

    private static func reasons(_ bits: UInt8) -> [Reason] {
        Reason.allCases.enumerated().filter { bits & (1 << UInt8($0.offset)) != 0 }.map(\.element)
    }

    /// The reasons `text` looks like an attempt to instruct a model, in declaration order.
    package func screen(_ text: UnsafeBufferPointer<UInt8>) -> [Reason] {
        let bits = scan(text).reasons
        return bits == 0 ? [] : Self.reasons(bits)
    }

    package func screen(_ text: String) -> [Reason] {
        var copy = text
        return copy.withUTF8 { screen($0) }
    }

    /// An event's marks: the reasons in bits 0 to 7, the words in bits 8 to 23, the screen's
    /// tag in bits 24 to 30, and bit 31 set once screened (so that a screen that found nothing
    /// is not repeated).
    private static let screened: UInt32 = 1 << 31
    private static let tagBits: UInt32 = 0x7F << 24

    private func marks(reasons: UInt8, words: UInt64) -> UInt32 {
        Self.screened | tag | UInt32(reasons) | UInt32(truncatingIfNeeded: words & 0xFFFF) << 8
    }

    /// Whether `marks` were written by a screen with this one's words.
    private func wrote(_ marks: UInt32) -> Bool { marks & Self.screened != 0 && marks & Self.tagBits == tag }

    /// The reasons and words of an event's messages, from its marks or else by reading them.
    private func found(in event: Event) -> (reasons: UInt8, words: UInt64) {
        let marks = event.marks
        if wrote(marks) { return (UInt8(truncatingIfNeeded: marks), UInt64(marks >> 8 & 0xFFFF)) }
        var found: (reasons: UInt8, words: UInt64) = (0, 0)
        _ = event.fields.anyValue(FieldName.message) { value in
            let (reasons, words) = scan(value)
            found.reasons |= reasons
            found.words |= words
            return false
        }
        return found
    }

    /// Screens the messages of `event` now and keeps the result in its marks, for `flag`. For
    /// an event about to be kept as evidence: it is read while in cache, and once, however many
    /// findings cite it.
    package func mark(_ event: inout Event) {
        guard !wrote(event.marks) else { return }
        let (reasons, words) = found(in: event)
        event.marks = marks(reasons: reasons, words: words)
    }

    /// Screens every evidence event of `finding` (by its marks where `mark` has screened it) and
    /// records the reasons on it. Returns whether `accept` held for the words of the init found
    /// in the messages of one of the events (bit k: `words[k]`).
    @discardableResult
    package func flag(_ finding: inout Finding, accept: (UInt64) -> Bool = { _ in false }) -> Bool {
        var found: UInt8 = 0
        var accepted = false
        // By index, where each event lies: `for e in` copied every event (a retain of each of
        // its buffers and strings).
        finding.evidences.withUnsafeBufferPointer { evidences in
            for i in evidences.indices {
                let (reasons, words) = self.found(in: evidences[i])
                found |= reasons
                if !accepted, words != 0, accept(words) { accepted = true }
            }
        }
        // Most findings have none: no lists to build for them.
        finding.injection = found == 0 ? [] : Self.reasons(found).map(\.rawValue)
        return accepted
    }
}
