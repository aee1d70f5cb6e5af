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
    private let reasons: [Reason]

    package init() {
        automaton = AhoCorasick(patterns: Self.phrases.map { Array($0.0.utf8) })
        reasons = Self.phrases.map(\.1)
    }

    /// The reasons `text` looks like an attempt to instruct a model, in declaration order.
    package func screen(_ text: UnsafeBufferPointer<UInt8>) -> [Reason] {
        var hit: UInt8 = 0
        automaton.scan(text) { id in
            let reason = reasons[Int(id)]
            hit |= 1 << UInt8(Reason.allCases.firstIndex(of: reason)!)
        }
        guard hit != 0 else { return [] }
        return Reason.allCases.enumerated().filter { hit & (1 << UInt8($0.offset)) != 0 }.map(\.element)
    }

    package func screen(_ text: String) -> [Reason] {
        var copy = text
        return copy.withUTF8 { screen($0) }
    }

    /// Screens every evidence message of `finding` and records the reasons on it.
    package func flag(_ finding: inout Finding) {
        var found: [Reason] = []
        for e in finding.evidences {
            _ = e.fields.anyValue(FieldName.message) { value in
                for r in screen(value) where !found.contains(r) { found.append(r) }
                return false
            }
        }
        // Most findings have none: no lists to build for them.
        finding.injection = found.isEmpty ? [] : Reason.allCases.filter(found.contains).map(\.rawValue)
    }
}
