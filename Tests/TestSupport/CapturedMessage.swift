/// One mail transaction as dumped by Postfix's `smtp-sink -d` (see ``SMTPSink``).
///
/// `smtp-sink` rewrites the content on its way to the file (measured with
/// Postfix 3.7 on Debian 12): CRLF becomes LF, a bare LF stays LF (so the two
/// cannot be told apart), a bare CR is *deleted*, and the first character of a
/// line that begins with "." after CRLF is removed (RFC 5321 unstuffing, also
/// for ".x"); a "." after a bare LF is kept. NUL and 8-bit bytes, trailing
/// spaces and long lines (200,000 bytes tried) are kept. For exact bytes use
/// ``RawSMTPSink``.
public struct CapturedMessage: Sendable, Equatable {
    /// The dump file.
    public let path: String
    /// `X-Client-Addr`: the client's IP address.
    public let clientAddress: String
    /// `X-Client-Proto`: SMTP, ESMTP or LMTP.
    public let clientProtocol: String
    /// `X-Helo-Args`: the argument of the last HELO/EHLO, if any.
    public let helo: String?
    /// The reverse path from `X-Mail-Args`, without angle brackets ("" for `<>`).
    public let mailFrom: String
    /// The MAIL parameters (`SIZE=123`, `BODY=8BITMIME`, …).
    public let mailParameters: [String]
    /// The forward paths of the RCPT commands, in order, without angle brackets.
    public let rcptTo: [String]
    /// The RCPT parameters, one array per recipient.
    public let rcptParameters: [[String]]
    /// The message as dumped: LF line endings, bare CRs gone, unstuffed
    /// (smtp-sink's own trailing empty line removed).
    public let content: [UInt8]

    /// ``content`` with every LF turned into CRLF: the bytes that were sent
    /// if the client sent canonical CRLF, no bare CR or LF, and stuffed dots.
    public var contentCRLF: [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(content.count + content.count / 40)
        for byte in content {
            if byte == 0x0A { result.append(0x0D) }
            result.append(byte)
        }
        return result
    }

    /// ``content`` as UTF-8 text.
    public var text: String { String(decoding: content, as: UTF8.self) }

    /// The value of header field `name` in ``content`` (first occurrence, unfolded), if any.
    public func headerValue(_ name: String) -> String? { MessageHeaders.value(name, in: content) }

    /// Parses a dump file's bytes; `nil` if they are not in smtp-sink's format.
    /// Text before the first `X-Client-Addr:` line (smtp-sink's `-S` option) is skipped.
    public static func parse(_ bytes: [UInt8], path: String = "") -> CapturedMessage? {
        guard let start = firstIndex(of: Array("X-Client-Addr: ".utf8), in: bytes) else { return nil }
        var fields: [(String, String)] = []
        var index = start
        var sawReceived = false
        var receivedContinuations = 0
        while index < bytes.count {
            guard let newline = bytes[index...].firstIndex(of: 0x0A) else { return nil }
            let line = String(decoding: bytes[index..<newline], as: UTF8.self)
            if sawReceived {
                guard line.hasPrefix("\t"), receivedContinuations < 2 else { break }
                receivedContinuations += 1
            } else if line.hasPrefix("Received: ") {
                sawReceived = true
            } else if let colon = line.firstIndex(of: ":") {
                let valueStart = line.index(colon, offsetBy: 2, limitedBy: line.endIndex) ?? line.endIndex
                fields.append((String(line[..<colon]), String(line[valueStart...])))
            } else {
                return nil
            }
            index = newline + 1
        }
        guard sawReceived else { return nil }
        func values(_ name: String) -> [String] { fields.filter { $0.0 == name }.map(\.1) }
        guard let address = values("X-Client-Addr").first, let proto = values("X-Client-Proto").first,
              let mailArgs = values("X-Mail-Args").first
        else { return nil }
        let mail = splitPath(mailArgs)
        let rcpts = values("X-Rcpt-Args").map(splitPath)
        var content = Array(bytes[index...])
        if content.last == 0x0A { content.removeLast() }  // smtp-sink's closing empty line
        return CapturedMessage(
            path: path, clientAddress: address, clientProtocol: proto, helo: values("X-Helo-Args").first,
            mailFrom: mail.path, mailParameters: mail.parameters,
            rcptTo: rcpts.map(\.path), rcptParameters: rcpts.map(\.parameters), content: content
        )
    }

    /// `<path> PARAM PARAM` → the path without brackets and the parameters.
    static func splitPath(_ arguments: String) -> (path: String, parameters: [String]) {
        let trimmed = arguments.drop { $0 == " " }
        guard trimmed.hasPrefix("<"), let close = trimmed.firstIndex(of: ">") else {
            let words = trimmed.split(separator: " ").map(String.init)
            return (words.first ?? "", Array(words.dropFirst()))
        }
        let path = String(trimmed[trimmed.index(after: trimmed.startIndex)..<close])
        let parameters = trimmed[trimmed.index(after: close)...].split(separator: " ").map(String.init)
        return (path, parameters)
    }

    private static func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if Array(haystack[start..<start + needle.count]) == needle { return start }
        }
        return nil
    }
}
