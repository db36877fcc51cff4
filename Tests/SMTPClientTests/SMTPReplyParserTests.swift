import NIOCore
import SMTPCore
import Testing

@testable import SMTPClient

@Suite struct SMTPReplyParserTests {
    private func parseAll(_ text: String) throws -> [SMTPReply] {
        var parser = SMTPReplyParser()
        parser.append(ByteBuffer(string: text))
        var replies: [SMTPReply] = []
        while let reply = try parser.next() { replies.append(reply) }
        return replies
    }

    @Test func singleLineWithEnhancedCode() throws {
        let replies = try parseAll("250 2.1.5 Ok\r\n")
        #expect(replies == [SMTPReply(250, "2.1.5", "Ok")])
    }

    @Test func singleLineWithoutEnhancedCode() throws {
        let replies = try parseAll("220 mx.example.test ESMTP\r\n354 End data with <CR><LF>.<CR><LF>\r\n")
        #expect(replies.count == 2)
        #expect(replies[0] == SMTPReply(220, nil, "mx.example.test ESMTP"))
        #expect(replies[1].code == 354)
        #expect(replies[1].enhancedCode == nil)
    }

    @Test func multilineReply() throws {
        let replies = try parseAll("250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n")
        #expect(replies.count == 1)
        #expect(replies[0].code == 250)
        #expect(replies[0].lines == ["mx.example.test", "PIPELINING", "SIZE 1000", "8BITMIME"])
    }

    @Test func multilineEnhancedCodeStrippedFromEveryLine() throws {
        let replies = try parseAll("550-5.1.1 No such user\r\n550 5.1.1 here\r\n")
        #expect(replies == [SMTPReply(code: 550, enhancedCode: "5.1.1", lines: ["No such user", "here"])])
    }

    @Test func enhancedCodeClassMustMatch() throws {
        let replies = try parseAll("250 5.1.1 odd\r\n451 4.3.0\r\n250 2.0\r\n")
        #expect(replies[0].enhancedCode == nil)
        #expect(replies[0].text == "5.1.1 odd")
        #expect(replies[1].enhancedCode == "4.3.0")
        #expect(replies[1].text == "")
        #expect(replies[2].enhancedCode == nil)
    }

    @Test func bareCodeAndBareLF() throws {
        let replies = try parseAll("250\n221 bye\n")
        #expect(replies.map(\.code) == [250, 221])
        #expect(replies[0].text == "")
    }

    @Test func incrementalFeeding() throws {
        let wire = Array("250-first\r\n250 2.0.0 last\r\n".utf8)
        var parser = SMTPReplyParser()
        var replies: [SMTPReply] = []
        for byte in wire {
            parser.append(ByteBuffer(bytes: [byte]))
            while let reply = try parser.next() { replies.append(reply) }
        }
        #expect(replies == [SMTPReply(code: 250, enhancedCode: "2.0.0", lines: ["first", "last"])])
    }

    @Test(arguments: ["25 short\r\n", "abc text\r\n", "250_x\r\n", "650 bad class\r\n", "150 preliminary\r\n"])
    func malformedLines(_ text: String) {
        #expect(throws: SMTPReplyParser.Failure.self) { try parseAll(text) }
    }

    @Test func codeChangeWithinMultiline() {
        #expect(throws: SMTPReplyParser.Failure.self) { try parseAll("250-a\r\n251 b\r\n") }
    }

    @Test func overlongLineRefusedWithoutLineEnd() {
        var parser = SMTPReplyParser()
        parser.append(ByteBuffer(string: "250 " + String(repeating: "x", count: 10_000)))
        #expect(throws: SMTPReplyParser.Failure.self) { try parser.next() }
    }

    @Test func discardDropsPartialReplies() throws {
        var parser = SMTPReplyParser()
        parser.append(ByteBuffer(string: "220 go ahead\r\n250-inj"))
        #expect(try parser.next()?.code == 220)
        parser.discardBuffered()
        #expect(parser.bufferedBytes == 0)
        parser.append(ByteBuffer(string: "250 real\r\n"))
        #expect(try parser.next() == SMTPReply(250, nil, "real"))
    }
}

@Suite struct ServerCapabilitiesTests {
    @Test func parsesKeywordsSizeAndAuth() {
        let reply = SMTPReply(
            code: 250, enhancedCode: nil,
            lines: ["mx.example.test greets you", "pipelining", "SIZE 10240000", "AUTH PLAIN login", "AUTH=CRAM-MD5", "8BITMIME", "DSN", "SMTPUTF8", "STARTTLS"]
        )
        let caps = ServerCapabilities(ehloReply: reply)
        #expect(caps.keywords == ["PIPELINING", "SIZE", "AUTH", "8BITMIME", "DSN", "SMTPUTF8", "STARTTLS"])
        #expect(caps.maxSize == 10_240_000)
        #expect(caps.authMechanisms == ["PLAIN", "LOGIN", "CRAM-MD5"])
        #expect(caps.pipelining && caps.eightBitMIME && caps.dsn && caps.smtpUTF8 && caps.startTLS)
    }

    @Test func sizeZeroMeansNoLimit() {
        let caps = ServerCapabilities(ehloReply: SMTPReply(code: 250, enhancedCode: nil, lines: ["x", "SIZE 0"]))
        #expect(caps.size)
        #expect(caps.maxSize == nil)
    }

    @Test func firstLineIsNotAKeyword() {
        let caps = ServerCapabilities(ehloReply: SMTPReply(250, nil, "STARTTLS.example.test"))
        #expect(caps.keywords.isEmpty)
    }
}
