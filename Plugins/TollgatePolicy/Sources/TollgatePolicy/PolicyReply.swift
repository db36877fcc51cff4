/// An SMTP reply that a stage wants the client to see (RFC 5321 §4.2, RFC 3463).
public struct PolicyReply: Sendable, Hashable, CustomStringConvertible {
    /// The three-digit reply code, e.g. `553`.
    public var code: Int
    /// The enhanced status code, e.g. `"5.7.1"`; `nil` lets the relay pick one from the code.
    public var enhancedCode: String?
    /// Human-readable text. CR, LF and NUL are replaced before it reaches the wire.
    public var text: String

    public init(code: Int, enhancedCode: String? = nil, text: String) {
        self.code = code
        self.enhancedCode = enhancedCode
        self.text = text
    }

    public var description: String {
        if let enhancedCode { return "\(code) \(enhancedCode) \(text)" }
        return "\(code) \(text)"
    }
}
