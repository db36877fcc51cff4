import NIOCore

/// An SMTP reply: a three-digit code, an RFC 3463 enhanced status code and text lines
/// (RFC 5321 §4.2, RFC 2034).
public struct SMTPReply: Sendable, Hashable, CustomStringConvertible, Error {
    public var code: Int
    /// `"2.1.0"`; `nil` for the greeting and replies that carry none (220 greeting, 354).
    public var enhancedCode: String?
    public var lines: [String]

    public init(_ code: Int, _ enhancedCode: String?, _ text: String) {
        self.code = code
        self.enhancedCode = enhancedCode
        self.lines = [text]
    }

    public init(code: Int, enhancedCode: String?, lines: [String]) {
        self.code = code
        self.enhancedCode = enhancedCode
        self.lines = lines.isEmpty ? [""] : lines
    }

    public var isPositive: Bool { code < 400 }
    public var isTransient: Bool { (400..<500).contains(code) }
    public var isPermanent: Bool { code >= 500 }

    /// The text of the first line.
    public var text: String { lines.first ?? "" }

    public var description: String {
        lines.map { line in
            [String(code), enhancedCode, line].compactMap { $0 }.joined(separator: " ")
        }.joined(separator: " / ")
    }

    /// A default enhanced code for a reply code, for replies built from a bare code.
    public static func defaultEnhancedCode(for code: Int) -> String {
        switch code / 100 {
        case 2: return "2.0.0"
        case 4: return "4.0.0"
        case 5: return "5.0.0"
        default: return "2.0.0"
        }
    }
}

extension SMTPReply {
    /// Writes the reply in wire form: `250-first\r\n250 last\r\n`. CR, LF and NUL in
    /// the text are replaced with spaces so a reply can never inject a second one.
    public func write(to buffer: inout ByteBuffer) {
        for (index, line) in lines.enumerated() {
            buffer.writeString(String(code))
            buffer.writeInteger(index == lines.count - 1 ? UInt8(ascii: " ") : UInt8(ascii: "-"))
            if let enhancedCode {
                buffer.writeString(enhancedCode)
                if !line.isEmpty { buffer.writeInteger(UInt8(ascii: " ")) }
            }
            for byte in line.utf8 {
                buffer.writeInteger(byte == 13 || byte == 10 || byte == 0 ? UInt8(ascii: " ") : byte)
            }
            buffer.writeStaticString("\r\n")
        }
    }

    public var wireString: String {
        var buffer = ByteBuffer()
        write(to: &buffer)
        return String(buffer: buffer)
    }
}

// Common replies, named after their meaning.
extension SMTPReply {
    public static let ok = SMTPReply(250, "2.0.0", "Ok")
    public static let senderOK = SMTPReply(250, "2.1.0", "Ok")
    public static let recipientOK = SMTPReply(250, "2.1.5", "Ok")
    public static let startData = SMTPReply(code: 354, enhancedCode: nil, lines: ["End data with <CR><LF>.<CR><LF>"])
    public static let bye = SMTPReply(221, "2.0.0", "Bye")
    public static let badSequence = SMTPReply(503, "5.5.1", "Error: bad sequence of commands")
    public static let syntaxError = SMTPReply(500, "5.5.2", "Error: command not recognized")
    public static let lineTooLong = SMTPReply(500, "5.5.2", "Error: line too long")
    public static let notImplemented = SMTPReply(502, "5.5.1", "Error: command not implemented")
    public static let shuttingDown = SMTPReply(421, "4.3.2", "Service shutting down, closing transmission channel")
    public static let timeout = SMTPReply(421, "4.4.2", "Error: timeout exceeded")
    public static let tooManyErrors = SMTPReply(421, "4.7.0", "Error: too many errors")
    public static let syncError = SMTPReply(554, "5.5.0", "Error: SMTP protocol synchronization")
    public static let localError = SMTPReply(451, "4.3.0", "Error: queue file write error")
}
