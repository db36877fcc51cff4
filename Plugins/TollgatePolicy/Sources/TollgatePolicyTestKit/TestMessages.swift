import TollgatePolicy

/// Messages as the relay hands them to the data phase — canonical CRLF text, dot
/// stuffing removed — including the shapes that break careless header and body code.
public enum TestMessages {
    /// A message with `From`, `To`, `Subject`, `Date` and `Message-ID`, then `headers`,
    /// then `body` (LF line ends become CRLF).
    public static func make(
        from: String = "alice@example.com",
        to: [String] = ["bob@example.net"],
        subject: String = "Test message",
        headers: [(name: String, value: String)] = [],
        body: String = "Hello.\r\n"
    ) -> MessageContent {
        var text = "From: \(from)\r\nTo: \(to.joined(separator: ", "))\r\nSubject: \(subject)\r\n"
        text += "Date: Tue, 01 Dec 2026 09:00:00 +0000\r\nMessage-ID: <test-message@example.com>\r\n"
        for field in headers { text += "\(field.name): \(field.value)\r\n" }
        return MessageContent(parsing: Array((text + "\r\n" + crlf(body)).utf8))
    }

    /// A message from raw octets, exactly as given (nothing is normalised).
    public static func raw(_ text: String) -> MessageContent { MessageContent(parsing: Array(text.utf8)) }

    /// A plain ASCII message.
    public static var plain: MessageContent { make() }

    /// An 8-bit UTF-8 subject (RFC 2047-less, as SMTPUTF8 clients send) and body.
    public static var eightBit: MessageContent {
        make(subject: "Grüße aus Zürich", headers: [("Content-Type", "text/plain; charset=utf-8"), ("Content-Transfer-Encoding", "8bit")], body: "Schöne Grüße — ½ € ✓\r\n")
    }

    /// A header field folded over several lines, and one long unfolded field.
    public static var foldedHeaders: MessageContent {
        make(headers: [
            ("X-Folded", "first part\r\n\tsecond part\r\n third part"),
            ("X-Long", String(repeating: "word ", count: 200).trimmingTrailingSpace),
        ])
    }

    /// Body lines that start with a dot (unstuffed, as the relay keeps them), and a lone dot.
    public static var dotLines: MessageContent { make(body: ".hidden line\r\n..two dots\r\n.\r\nend\r\n") }

    /// No body at all: the header, the empty line, nothing after it.
    public static var emptyBody: MessageContent { make(body: "") }

    /// A last line without CRLF (possible with BDAT).
    public static var noFinalCRLF: MessageContent { make(body: "no line end") }

    /// A header block with no empty line after it (no body separator).
    public static var headerOnly: MessageContent { raw("From: alice@example.com\r\nSubject: header only\r\n") }

    /// Two `From` fields (a spoofing attempt, or a broken client).
    public static var twoFromFields: MessageContent { make(headers: [("From", "mallory@evil.example")]) }

    /// A body of about `bytes` octets in 76-character lines.
    public static func large(bytes: Int) -> MessageContent {
        let line = String(repeating: "x", count: 76) + "\r\n"
        return make(subject: "large", body: String(repeating: line, count: max(1, bytes / line.utf8.count)))
    }

    /// Every fixed shape above, named, for tests that must hold for all of them.
    public static var all: [(name: String, message: MessageContent)] {
        [
            ("plain", plain), ("eightBit", eightBit), ("foldedHeaders", foldedHeaders), ("dotLines", dotLines),
            ("emptyBody", emptyBody), ("noFinalCRLF", noFinalCRLF), ("headerOnly", headerOnly), ("twoFromFields", twoFromFields),
        ]
    }

    /// `text` with every bare LF made CRLF.
    static func crlf(_ text: String) -> String {
        var out = ""
        var previous: Character?
        for character in text {
            if character == "\n", previous != "\r" { out += "\r\n" } else { out.append(character) }
            previous = character
        }
        return out
    }
}

extension String {
    fileprivate var trimmingTrailingSpace: String {
        var s = self
        while s.hasSuffix(" ") { s.removeLast() }
        return s
    }
}
