/// An SMTP reply as read by ``SMTPTestClient``: the code and the text of each line.
public struct SMTPTestReply: Sendable, Equatable, CustomStringConvertible {
    /// The three-digit reply code.
    public let code: Int
    /// The text of each line, after "250-" / "250 ".
    public let lines: [String]

    public init(code: Int, lines: [String]) {
        self.code = code
        self.lines = lines
    }

    /// The enhanced status code of the first line ("2.1.0"), if it has one (RFC 3463).
    public var enhancedCode: String? {
        guard let first = lines.first?.split(separator: " ", maxSplits: 1).first else { return nil }
        let parts = first.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }),
              parts[0].count == 1, String(parts[0]) == String(code / 100)
        else { return nil }
        return String(first)
    }

    /// The lines' text joined with "\n".
    public var text: String { lines.joined(separator: "\n") }

    /// 2xx.
    public var isSuccess: Bool { (200..<300).contains(code) }
    /// 3xx (354, 334).
    public var isIntermediate: Bool { (300..<400).contains(code) }
    /// 4xx.
    public var isTransientFailure: Bool { (400..<500).contains(code) }
    /// 5xx.
    public var isPermanentFailure: Bool { (500..<600).contains(code) }

    /// Whether a line (after the first, for EHLO) names `keyword` as its first word, case-insensitively.
    public func hasExtension(_ keyword: String) -> Bool {
        lines.dropFirst().contains { $0.split(separator: " ").first?.uppercased() == keyword.uppercased() }
    }

    /// The reply as it was on the wire (without CRLF): "250-a\n250 b".
    public var description: String {
        lines.enumerated().map { "\(code)\($0.offset == lines.count - 1 ? " " : "-")\($0.element)" }.joined(separator: "\n")
    }
}
