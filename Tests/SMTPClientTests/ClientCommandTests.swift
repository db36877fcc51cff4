import NIOCore
import SMTPCore
import Testing

@testable import SMTPClient

/// RELIABILITY C18: nothing from the envelope may add a line of its own.
@Suite struct ClientCommandTests {
    static let injections = [
        "user@gmail.com>\r\nDATA\r\nInjected message body\r\n.\r\nQUIT\r\n",
        "user@example.com\n",
        "user@example.com\r",
        "us\0er@example.com",
        "user@example.com> NOTIFY=NEVER",
        "<user@example.com>",
    ]

    @Test(arguments: injections)
    func recipientInjectionRefused(_ address: String) {
        #expect(throws: SMTPClientError.self) { try ClientCommand.rcpt(to: address, parameters: []) }
    }

    @Test(arguments: injections)
    func senderInjectionRefused(_ address: String) {
        #expect(throws: SMTPClientError.self) { try ClientCommand.mail(from: address, parameters: []) }
    }

    @Test func parameterInjectionRefused() {
        #expect(throws: SMTPClientError.self) { try ClientCommand.mail(from: "a@b.test", parameters: ["ENVID=x\r\nRSET"]) }
        #expect(throws: SMTPClientError.self) { try ClientCommand.rcpt(to: "a@b.test", parameters: ["ORCPT=rfc822;a b"]) }
        #expect(throws: SMTPClientError.self) { try ClientCommand.ehlo("relay.test\r\nMAIL FROM:<x>") }
        #expect(throws: SMTPClientError.self) { try ClientCommand.ehlo("") }
    }

    @Test func validCommands() throws {
        #expect(try ClientCommand.mail(from: "", parameters: []).line == "MAIL FROM:<>")
        #expect(try ClientCommand.mail(from: "a@b.test", parameters: ["SIZE=10", "BODY=8BITMIME"]).line == "MAIL FROM:<a@b.test> SIZE=10 BODY=8BITMIME")
        #expect(try ClientCommand.rcpt(to: "\"a b\"@c.test", parameters: ["NOTIFY=NEVER"]).line == "RCPT TO:<\"a b\"@c.test> NOTIFY=NEVER")
        #expect(try ClientCommand.rcpt(to: "josé@exämple.test", parameters: []).line == "RCPT TO:<josé@exämple.test>")
        #expect(throws: SMTPClientError.self) { try ClientCommand.rcpt(to: "", parameters: []) }
        var buffer = ByteBuffer()
        try ClientCommand.ehlo("relay.test").write(to: &buffer)
        #expect(String(buffer: buffer) == "EHLO relay.test\r\n")
    }

    @Test func authResponseIsNotLogged() throws {
        let command = try ClientCommand.auth(mechanism: "PLAIN", initialResponse: "AHVzZXIAc2VjcmV0")
        #expect(command.line == "AUTH PLAIN AHVzZXIAc2VjcmV0")
        #expect(!command.description.contains("AHVzZXIAc2VjcmV0"))
    }
}

@Suite struct SASLClientTests {
    @Test func prefersPlain() throws {
        var sasl = try #require(SASLClient(offered: ["LOGIN", "PLAIN"], username: "relay", password: "s3cret"))
        #expect(sasl.mechanism == .plain)
        let start = try sasl.start()
        #expect(start.line == "AUTH PLAIN " + Base64.encode(Array("\0relay\0s3cret".utf8)))
        #expect(try sasl.received(SMTPReply(235, "2.7.0", "ok")) == .succeeded)
    }

    @Test func plainWithEmptyChallenge() throws {
        var sasl = try #require(SASLClient(offered: ["PLAIN"], username: "u", password: "p"))
        _ = try sasl.start()
        #expect(try sasl.received(SMTPReply(334, nil, "")) == .send(try .saslResponse(Base64.encode(Array("\0u\0p".utf8)))))
        let failure = SMTPReply(535, "5.7.8", "bad")
        #expect(try sasl.received(failure) == .failed(failure))
    }

    @Test func loginExchange() throws {
        var sasl = try #require(SASLClient(offered: ["LOGIN"], username: "relay", password: "pw"))
        #expect(try sasl.start().line == "AUTH LOGIN")
        #expect(try sasl.received(SMTPReply(334, nil, "VXNlcm5hbWU6")) == .send(try .saslResponse(Base64.encode("relay"))))
        #expect(try sasl.received(SMTPReply(334, nil, "UGFzc3dvcmQ6")) == .send(try .saslResponse(Base64.encode("pw"))))
        #expect(try sasl.received(SMTPReply(334, nil, "more?")) == .failed(SMTPReply(334, nil, "more?")))
    }

    @Test func noSupportedMechanism() {
        #expect(SASLClient(offered: ["CRAM-MD5"], username: "u", password: "p") == nil)
    }

    @Test func nulInCredentialsRefused() {
        #expect(throws: SMTPClientError.self) { try SASLClient.validate(username: "a\0b", password: "p") }
        #expect(throws: SMTPClientError.self) { try SASLClient.validate(username: "", password: "p") }
    }
}
