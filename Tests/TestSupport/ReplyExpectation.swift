/// What a `<` line of a transcript demands of the server's next reply:
/// `< CODE [ENHANCED-CODE] [TEXT] [close]`.
public struct ReplyExpectation: Sendable, Hashable, CustomStringConvertible {
    /// The three-digit reply code.
    public var code: Int
    /// The RFC 3463 code the first line must carry (`2.1.0`), if given.
    public var enhancedCode: String?
    /// Text the reply must contain (any line, case-insensitive), if given: fragments
    /// separated by ` & ` must all appear; one written `!FRAGMENT` must not.
    public var text: String?
    /// Whether the server closes the connection after this reply.
    public var closes: Bool

    public init(code: Int, enhancedCode: String? = nil, text: String? = nil, closes: Bool = false) {
        self.code = code
        self.enhancedCode = enhancedCode
        self.text = text
        self.closes = closes
    }

    /// Reads the part after `<`; `nil` when it does not start with a reply code.
    init?(parsing source: String) {
        var words = source.split(separator: " ").map(String.init)
        guard let first = words.first, first.count == 3, first.allSatisfy(\.isASCIIDigit), let code = Int(first) else { return nil }
        words.removeFirst()
        self.code = code
        closes = words.last == "close"
        if closes { words.removeLast() }
        if let candidate = words.first, Self.isEnhancedCode(candidate) {
            enhancedCode = candidate
            words.removeFirst()
        }
        text = words.isEmpty ? nil : words.joined(separator: " ")
    }

    /// `class "." subject "." detail` (RFC 3463 §2).
    static func isEnhancedCode(_ word: String) -> Bool {
        let parts = word.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 3 && ["2", "4", "5"].contains(parts[0])
            && parts.dropFirst().allSatisfy { (1...3).contains($0.count) && $0.allSatisfy(\.isASCIIDigit) }
    }

    /// Why `reply` (after which the server did or did not close) does not match; `nil` if it does.
    public func mismatch(_ reply: SMTPTestReply, closed: Bool) -> String? {
        var wrong: [String] = []
        if reply.code != code { wrong.append("code") }
        if let enhancedCode, reply.enhancedCode != enhancedCode { wrong.append("enhanced code") }
        if let text, !Self.matches(reply.text.lowercased(), text.lowercased()) { wrong.append("text") }
        if closed != closes { wrong.append(closes ? "the server did not close" : "the server closed") }
        guard !wrong.isEmpty else { return nil }
        return "expected \(self), got \(reply.description.replacingNewlines)" + " (\(wrong.joined(separator: ", ")))"
    }

    private static func matches(_ reply: String, _ text: String) -> Bool {
        text.split(separator: " & ").allSatisfy { fragment in
            fragment.hasPrefix("!") ? !reply.contains(fragment.dropFirst()) : reply.contains(fragment)
        }
    }

    /// As written in a transcript.
    public var description: String {
        ([String(code), enhancedCode, text.map { "\"\($0)\"" }, closes ? "close" : nil] as [String?]).compactMap { $0 }.joined(separator: " ")
    }
}

extension String {
    /// Multiline replies on one line, for messages.
    var replacingNewlines: String { split(separator: "\n").joined(separator: " / ") }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
