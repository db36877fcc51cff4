import NIOCore
import SMTPCore

/// Limits on what an upstream may send, so a hostile server cannot make us buffer
/// without bound.
enum SMTPClientLimits {
    /// Longest reply line accepted, CRLF included. RFC 5321 §4.5.3.1.5 says 512; real
    /// servers send longer text, so allow generously.
    static let maxReplyLine = 8192
    /// Most lines in one multiline reply (EHLO answers have about twenty).
    static let maxReplyLines = 512
    /// Most complete replies held while nobody is waiting for them. A pipelined group
    /// has one per command, so this bounds the recipients per transaction too.
    static let maxQueuedReplies = 10_000
}

/// An incremental parser of server replies (RFC 5321 §4.2):
///
///     Reply-line     = *( Reply-code "-" [ textstring ] CRLF )
///                      Reply-code [ SP textstring ] CRLF
///     Reply-code     = %x32-35 %x30-35 %x30-39
///
/// Lines may end in a bare LF (accepted leniently). An RFC 3463 enhanced status code at
/// the start of the text (`2.1.5 Ok`) is split off into ``SMTPReply/enhancedCode``.
/// Bytes are fed with ``append(_:)``; ``next()`` returns `nil` when more are needed.
public struct SMTPReplyParser: Sendable {
    public struct Failure: Error, Sendable, Hashable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    private var buffer = ByteBuffer()
    private var pendingCode: Int?
    private var pendingEnhanced: String?
    private var pendingLines: [String] = []

    public init() {}

    public mutating func append(_ bytes: ByteBuffer) {
        var bytes = bytes
        if buffer.readableBytes == 0 {
            buffer.clear()
        } else if buffer.readerIndex > 65_536 {
            buffer.discardReadBytes()
        }
        buffer.writeBuffer(&bytes)
    }

    /// Drops every buffered byte and any half-read multiline reply (STARTTLS, RELIABILITY C7).
    public mutating func discardBuffered() {
        buffer.clear()
        pendingCode = nil
        pendingEnhanced = nil
        pendingLines = []
    }

    /// Bytes received but not yet part of a complete reply.
    public var bufferedBytes: Int { buffer.readableBytes }

    /// The next complete reply, or `nil` when more bytes are needed.
    public mutating func next() throws(Failure) -> SMTPReply? {
        while true {
            let view = buffer.readableBytesView
            guard let lf = view.firstIndex(of: UInt8(ascii: "\n")) else {
                if view.count >= SMTPClientLimits.maxReplyLine { throw Failure(reason: "reply line too long") }
                return nil
            }
            let lineLength = lf - view.startIndex
            guard lineLength < SMTPClientLimits.maxReplyLine else { throw Failure(reason: "reply line too long") }
            var line = Array(view[view.startIndex..<lf])
            buffer.moveReaderIndex(forwardBy: lineLength + 1)
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            let parsed = try Self.parseLine(line)
            if let code = pendingCode, code != parsed.code {
                throw Failure(reason: "reply code changed within a multiline reply")
            }
            pendingCode = parsed.code
            if pendingEnhanced == nil { pendingEnhanced = parsed.enhanced }
            pendingLines.append(parsed.text)
            guard pendingLines.count <= SMTPClientLimits.maxReplyLines else {
                throw Failure(reason: "too many lines in one reply")
            }
            if parsed.isLast {
                let reply = SMTPReply(code: parsed.code, enhancedCode: pendingEnhanced, lines: pendingLines)
                pendingCode = nil
                pendingEnhanced = nil
                pendingLines = []
                return reply
            }
        }
    }

    struct Line: Equatable {
        var code: Int
        var isLast: Bool
        var enhanced: String?
        var text: String
    }

    /// One line without its line ending.
    static func parseLine(_ line: [UInt8]) throws(Failure) -> Line {
        guard line.count >= 3,
            (UInt8(ascii: "2")...UInt8(ascii: "5")).contains(line[0]),
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(line[1]),
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(line[2])
        else { throw Failure(reason: "malformed reply line") }
        let code = Int(line[0] - 48) * 100 + Int(line[1] - 48) * 10 + Int(line[2] - 48)
        var isLast = true
        var textStart = 3
        if line.count > 3 {
            switch line[3] {
            case UInt8(ascii: " "): isLast = true
            case UInt8(ascii: "-"): isLast = false
            default: throw Failure(reason: "malformed reply line")
            }
            textStart = 4
        }
        let textBytes = line[min(textStart, line.count)...]
        let (enhanced, rest) = splitEnhancedCode(textBytes, code: code)
        return Line(code: code, isLast: isLast, enhanced: enhanced, text: String(decoding: rest, as: UTF8.self))
    }

    // status-code = class "." subject "." detail  (RFC 3463 §2)
    // class = "2" / "4" / "5"; subject = 1*3digit; detail = 1*3digit
    /// Splits a leading enhanced status code whose class matches the reply's class.
    static func splitEnhancedCode(_ text: ArraySlice<UInt8>, code: Int) -> (String?, ArraySlice<UInt8>) {
        var i = text.startIndex
        guard i < text.endIndex, text[i] == UInt8(ascii: "0") + UInt8(code / 100) else { return (nil, text) }
        i += 1
        for _ in 0..<2 {
            guard i < text.endIndex, text[i] == UInt8(ascii: ".") else { return (nil, text) }
            i += 1
            var digits = 0
            while i < text.endIndex, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(text[i]), digits < 4 {
                i += 1
                digits += 1
            }
            guard (1...3).contains(digits) else { return (nil, text) }
        }
        if i < text.endIndex {
            guard text[i] == UInt8(ascii: " ") else { return (nil, text) }
            let enhanced = String(decoding: text[text.startIndex..<i], as: UTF8.self)
            return (enhanced, text[(i + 1)...])
        }
        return (String(decoding: text, as: UTF8.self), text[i...])
    }
}
