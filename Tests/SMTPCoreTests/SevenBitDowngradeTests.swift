import NIOCore
import Testing

@testable import SMTPCore

/// RELIABILITY C16: 8-bit content converted to quoted-printable for a 7-bit upstream.
@Suite struct SevenBitDowngradeTests {
    func downgrade(_ text: String) -> String? {
        SevenBitDowngrade.downgrade(ByteBuffer(string: text)).map { String(buffer: $0) }
    }

    /// Every octet 7-bit, every line break CRLF, no line over `limit`.
    func isSevenBitCanonical(_ text: String, limit: Int = 998) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.allSatisfy({ $0 < 0x80 && $0 != 0 }) else { return false }
        for (i, b) in bytes.enumerated() {
            if b == 10, i == 0 || bytes[i - 1] != 13 { return false }
            if b == 13, i + 1 >= bytes.count || bytes[i + 1] != 10 { return false }
        }
        return text.split(separator: "\r\n", omittingEmptySubsequences: false).allSatisfy { $0.utf8.count <= limit }
    }

    @Test func quotedPrintableRoundTripsAnyBytes() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let n = Int.random(in: 0..<600, using: &generator)
            var bytes: [UInt8] = []
            for _ in 0..<n {
                switch Int.random(in: 0..<10, using: &generator) {
                case 0: bytes += [13, 10]
                case 1: bytes.append(32)
                case 2: bytes.append(UInt8.random(in: 0x80...0xFF, using: &generator))
                case 3: bytes.append(61)
                default: bytes.append(UInt8.random(in: 0...0x7F, using: &generator))
                }
            }
            let encoded = QuotedPrintable.encode(bytes[...])
            let text = String(decoding: encoded, as: UTF8.self)
            #expect(isSevenBitCanonical(text, limit: 76), "\(bytes)")
            // RFC 2045 §6.7 (3): no space or tab before a line break.
            #expect(!text.contains(" \r\n") && !text.contains("\t\r\n") && !text.hasSuffix(" ") && !text.hasSuffix("\t"))
            #expect(QuotedPrintable.decode(encoded[...]) == bytes, "\(bytes)")
        }
    }

    @Test func quotedPrintableExamples() {
        func qp(_ s: String) -> String { String(decoding: QuotedPrintable.encode(Array(s.utf8)[...]), as: UTF8.self) }
        #expect(qp("Grüße = done \r\nnext\tline\t") == "Gr=C3=BC=C3=9Fe =3D done=20\r\nnext\tline=09")
        let long = qp(String(repeating: "é", count: 40))
        #expect(long.split(separator: "\r\n", omittingEmptySubsequences: false).allSatisfy { $0.utf8.count <= 76 })
        #expect(long.hasPrefix(String(repeating: "=C3=A9", count: 12) + "=C3=\r\n"))
        // A line of exactly 76 literal octets needs no soft break.
        #expect(qp(String(repeating: "a", count: 76)) == String(repeating: "a", count: 76))
        #expect(qp(String(repeating: "a", count: 77)) == String(repeating: "a", count: 75) + "=\r\naa")
    }

    @Test func plainMessageWithoutMIMEHeaders() throws {
        let original = "From: a@example.com\r\nSubject: hi\r\n\r\nGrüße aus Köln.\r\nZeile 2\r\n"
        let converted = try #require(downgrade(original))
        #expect(isSevenBitCanonical(converted))
        #expect(converted.hasPrefix("From: a@example.com\r\nSubject: hi\r\nContent-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n\r\n"))
        let body = try #require(converted.split(separator: "\r\n\r\n").last.map(String.init))
        #expect(QuotedPrintable.decode(Array(body.utf8)[...]) == Array("Grüße aus Köln.\r\nZeile 2\r\n".utf8))
    }

    @Test func sevenBitMessageIsUnchanged() {
        let original = "Subject: ascii\r\n\r\nplain = text\r\n"
        #expect(downgrade(original) == original)
    }

    @Test func multipartPartsAndAttachedMessage() throws {
        let attached = "From: c@example.com\r\nSubject: inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nInnen: Ä\r\n"
        let original = """
            From: a@example.com\r
            MIME-Version: 1.0\r
            Content-Type: multipart/mixed;\r
            \tboundary="b1 x"\r
            Content-Transfer-Encoding: 8bit\r
            \r
            preamble\r
            --b1 x\r
            Content-Type: text/plain; charset=utf-8\r
            Content-Transfer-Encoding: 8bit\r
            \r
            Text: naïve café\r
            --b1 x\r
            Content-Type: text/html; charset=utf-8\r
            \r
            <p>résumé</p>\r
            --b1 x\r
            Content-Type: application/octet-stream\r
            Content-Transfer-Encoding: base64\r
            \r
            AAECAw==\r
            --b1 x\r
            Content-Type: message/rfc822\r
            \r
            \(attached)--b1 x--\r
            epilogue\r

            """
        let converted = try #require(downgrade(original))
        #expect(isSevenBitCanonical(converted))
        // The outer label is 7bit now; boundaries, preamble, epilogue and the base64 part as they were.
        #expect(converted.contains("Content-Transfer-Encoding: 7bit\r\n\r\npreamble\r\n--b1 x\r\n"))
        #expect(!converted.contains("Content-Transfer-Encoding: 8bit"))
        #expect(converted.contains("--b1 x\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--b1 x\r\n"))
        #expect(converted.hasSuffix("--b1 x--\r\nepilogue\r\n"))
        #expect(converted.contains("Text: na=C3=AFve caf=C3=A9\r\n--b1 x"))
        #expect(converted.contains("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>r=C3=A9sum=C3=A9</p>\r\n--b1 x"))
        #expect(converted.contains("Content-Type: message/rfc822\r\n\r\nFrom: c@example.com\r\nSubject: inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nInnen: =C3=84\r\n--b1 x--"))
    }

    /// Header fields cannot be converted (RFC 2047 would change their meaning): nil, so
    /// the message bounces (and the bounce carries the headers only).
    @Test func eightBitHeadersCannotBeConverted() {
        #expect(downgrade("Subject: Grüße\r\n\r\nbody é\r\n") == nil)
        let part = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Description: é\r\n\r\nx é\r\n--b--\r\n"
        #expect(downgrade(part) == nil)
        // Already "encoded" yet 8-bit: broken, not guessed at.
        #expect(downgrade("Content-Transfer-Encoding: base64\r\n\r\nnot base64 é\r\n") == nil)
    }

    /// A hostile message nests parts deeper than any mail program does: past
    /// `maxDepth` nothing is converted (the message bounces with its headers), and the
    /// walk never runs out of stack, however deep the nesting (2,000 levels here).
    @Test func deepNestingIsRefusedNotRecursedInto() {
        func nested(_ depth: Int) -> String {
            var text = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n"
            for level in 1..<depth { text += "--b\(level - 1)\r\nContent-Type: multipart/mixed; boundary=\"b\(level)\"\r\n\r\n" }
            text += "--b\(depth - 1)\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ngrüße\r\n--b\(depth - 1)--\r\n"
            for level in (0..<(depth - 1)).reversed() { text += "--b\(level)--\r\n" }
            return text
        }
        let shallow = downgrade(nested(10))
        #expect(shallow.map { isSevenBitCanonical($0) && $0.contains("gr=C3=BC=C3=9Fe") } == true)
        #expect(downgrade(nested(SevenBitDowngrade.maxDepth + 5)) == nil)
        #expect(downgrade(nested(2_000)) == nil)
    }
}
