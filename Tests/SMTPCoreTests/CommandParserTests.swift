import NIOCore
import Testing

@testable import SMTPCore

@Suite struct CommandParserTests {
    func parse(_ s: String) throws(SMTPCommandParser.Failure) -> SMTPCommand {
        try SMTPCommandParser().parse(Array(s.utf8)[...])
    }

    func failure(_ s: String) -> SMTPReply? {
        do {
            _ = try parse(s)
            return nil
        } catch {
            return error.reply
        }
    }

    @Test func basicCommands() throws {
        #expect(try parse("EHLO client.example") == .ehlo("client.example"))
        #expect(try parse("helo client") == .helo("client"))
        #expect(try parse("DATA") == .data)
        #expect(try parse("rset") == .rset)
        #expect(try parse("NOOP anything") == .noop)
        #expect(try parse("QUIT") == .quit)
        #expect(try parse("STARTTLS") == .startTLS)
        #expect(try parse("BDAT 100 LAST") == .bdat(size: 100, last: true))
        #expect(try parse("BDAT 0") == .bdat(size: 0, last: false))
        #expect(try parse("AUTH PLAIN AGFsaWNlAHNlY3JldA==") == .auth(mechanism: "PLAIN", initialResponse: "AGFsaWNlAHNlY3JldA=="))
        #expect(try parse("auth login") == .auth(mechanism: "LOGIN", initialResponse: nil))
    }

    @Test func mailFromWithParameters() throws {
        let command = try parse("MAIL FROM:<alice@example.com> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=abc")
        guard case .mail(let path, let params) = command else { Issue.record("not MAIL"); return }
        #expect(path.address == "alice@example.com")
        #expect(params.size == 1000)
        #expect(params.body == .eightBitMIME)
        #expect(params.ret == "HDRS")
        #expect(params.envelopeID == "abc")
    }

    @Test func nullSenderAndLenientSpace() throws {
        #expect(try parse("MAIL FROM:<>") == .mail(.null, MailParameters()))
        guard case .mail(let path, _) = try parse("mail from: <bob@example.com>") else { Issue.record("not MAIL"); return }
        #expect(path.address == "bob@example.com")
    }

    @Test func quotedLocalPartAndLiterals() throws {
        guard case .rcpt(let m, _, _) = try parse(#"RCPT TO:<"john smith"@example.com>"#) else { Issue.record("not RCPT"); return }
        #expect(m.localPart == "john smith")
        #expect(m.description == #""john smith"@example.com"#)
        guard case .rcpt(let v4, _, _) = try parse("RCPT TO:<x@[192.0.2.1]>") else { Issue.record("not RCPT"); return }
        #expect(v4.isAddressLiteral)
        guard case .rcpt(let v6, _, _) = try parse("RCPT TO:<x@[IPv6:2001:db8::1]>") else { Issue.record("not RCPT"); return }
        #expect(v6.domain == "[IPv6:2001:db8::1]")
        #expect(failure("RCPT TO:<x@[999.1.1.1]>")?.code == 501)
    }

    @Test func sourceRouteAndRoutingCharactersAreVisible() throws {
        guard case .rcpt(let m, _, let route) = try parse("RCPT TO:<@relay.example:user@example.com>") else { Issue.record("not RCPT"); return }
        #expect(route)
        #expect(m.description == "user@example.com")
        guard case .rcpt(let p, _, _) = try parse("RCPT TO:<user%other.example@example.com>") else { Issue.record("not RCPT"); return }
        #expect(p.hasRoutingCharacters)
        guard case .rcpt(let q, _, _) = try parse(#"RCPT TO:<"user@other.example"@example.com>"#) else { Issue.record("not RCPT"); return }
        #expect(q.hasRoutingCharacters)
    }

    @Test func smtpUTF8Addresses() throws {
        #expect(failure("MAIL FROM:<jörg@example.com>") == SMTPReply(553, "5.6.7", "Error: this address requires SMTPUTF8"))
        #expect(failure("MAIL FROM:<jörg@@example.com>")?.code == 501)
        guard case .mail(let path, let params) = try parse("MAIL FROM:<jörg@exämple.com> SMTPUTF8") else { Issue.record("not MAIL"); return }
        #expect(params.smtpUTF8)
        #expect(path.mailbox?.needsSMTPUTF8 == true)
    }

    @Test func malformedCommandsGetReplies() {
        #expect(failure("FOO")?.code == 500)
        #expect(failure("MAIL FROM:alice")?.code == 501)
        #expect(failure("MAIL FROM:<a@b> FOO=1")?.code == 555)
        // RELIABILITY C19: quotes and odd values in parameters are data, parsed in bounds.
        guard case .mail(_, let odd) = try? parse(#"MAIL FROM:<a@b.example> AUTH="x"#) else { Issue.record("AUTH=\"x not parsed"); return }
        #expect(odd.auth == #""x"#)
        #expect(failure("MAIL FROM:<a@b> AUTH=") != nil)
        #expect(failure("MAIL FROM:<;sleep 66;>") != nil)
        #expect(failure("MAIL FROM:<a@b> SIZE=abc")?.code == 501)
        #expect(failure("MAIL FROM:<a@b> SIZE=1 SIZE=2")?.code == 501)
        #expect(failure("RCPT TO:<>")?.code == 501)
        #expect(failure("RCPT TO:<a..b@example.com>")?.code == 501)
        #expect(failure("RCPT TO:<a@-example.com>")?.code == 501)
        #expect(failure("BDAT x")?.code == 501)
        #expect(failure("STARTTLS foo")?.code == 501)
        #expect(failure("NOOP\u{0}")?.code == 500)
        #expect(failure("EHLO")?.code == 501)
    }

    @Test func httpIsForeign() {
        do {
            _ = try parse("GET / HTTP/1.1")
            Issue.record("parsed HTTP")
        } catch {
            #expect(error.isForeignProtocol)
        }
    }

    @Test func rcptParameters() throws {
        guard case .rcpt(_, let params, _) = try parse("RCPT TO:<a@b.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b.example") else { Issue.record("not RCPT"); return }
        #expect(params.notify == ["SUCCESS", "FAILURE"])
        #expect(params.originalRecipient == "rfc822;a@b.example")
        #expect(failure("RCPT TO:<a@b.example> NOTIFY=NEVER,SUCCESS")?.code == 501)
    }

    /// Postfix `strict_rfc821_envelopes = no` (the default): a path without brackets.
    @Test func pathsWithoutBracketsWhenNotStrict() throws {
        guard case .mail(let path, let params) = try parse("MAIL FROM:alice@example.com SIZE=1000 BODY=8BITMIME") else { Issue.record("not MAIL"); return }
        #expect(path.address == "alice@example.com")
        #expect(params.size == 1000 && params.body == .eightBitMIME)
        guard case .mail(let spaced, _) = try parse("mail from: bob@example.com") else { Issue.record("not MAIL"); return }
        #expect(spaced.address == "bob@example.com")
        guard case .rcpt(let m, let rcptParams, let routed) = try parse("RCPT TO:carol@[192.0.2.1] NOTIFY=NEVER") else { Issue.record("not RCPT"); return }
        #expect(m.description == "carol@[192.0.2.1]" && rcptParams.notify == ["NEVER"] && !routed)
        // Still a valid address, or 501 with the reason.
        #expect(failure("MAIL FROM:alice")?.code == 501)
        #expect(failure("MAIL FROM:alice@")?.code == 501)
        #expect(failure("RCPT TO:a@b@c")?.code == 501)
        // The address ends at the first space: the rest are (here malformed) parameters.
        #expect(failure("RCPT TO:a b@c")?.code == 501)
        #expect(failure("MAIL FROM:")?.code == 501)
        #expect(failure("MAIL FROM:al\u{00E9}@example.com")?.code == 553)
        #expect(failure("RCPT TO:\(String(repeating: "a", count: 64))@\(String(repeating: "b.", count: 120))example")?.code == 501)
    }

    @Test func strictEnvelopesNeedBrackets() throws {
        let strict = SMTPCommandParser(strictEnvelopes: true, postmasterDomain: "relay.test")
        for line in ["MAIL FROM:alice@example.com", "RCPT TO:bob@example.net", "RCPT TO:Postmaster"] {
            do {
                _ = try strict.parse(Array(line.utf8)[...])
                Issue.record("accepted \(line)")
            } catch {
                #expect(error.reply.code == 501, "\(line)")
                #expect(error.reply.lines.joined().contains("enclosed in <>") || line.hasSuffix("Postmaster"), "\(line)")
            }
        }
        #expect(try strict.parse(Array("MAIL FROM: <alice@example.com>".utf8)[...]) == .mail(.mailbox(Mailbox(localPart: "alice", domain: "example.com")), MailParameters()))
    }

    /// RFC 5321 §4.1.1.3: `RCPT TO:<Postmaster>` must be accepted; it is the relay's own.
    @Test func barePostmaster() throws {
        let parser = SMTPCommandParser(postmasterDomain: "relay.test")
        for line in ["RCPT TO:<Postmaster>", "rcpt to:<postmaster>", "RCPT TO:Postmaster"] {
            guard case .rcpt(let m, _, _) = try parser.parse(Array(line.utf8)[...]) else { Issue.record("not RCPT"); continue }
            #expect(m.description == "Postmaster@relay.test", "\(line)")
        }
        // Without a domain to give it, as before.
        #expect(failure("RCPT TO:<Postmaster>")?.code == 501)
        #expect(failure("MAIL FROM:<Postmaster>")?.code == 501)
    }

    @Test func mailboxRoundTrip() throws {
        for text in ["alice@example.com", #""a b"@example.com"#, #""a\"b"@example.com"#, "x@[192.0.2.1]", "o'brien+tag@example.co.uk"] {
            let mailbox = try AddressParser().parseMailbox(text)
            let again = try AddressParser().parseMailbox(mailbox.description)
            #expect(again == mailbox, "\(text)")
        }
    }
}

@Suite struct ReplyTests {
    @Test func encodesMultilineWithEnhancedCodes() {
        let reply = SMTPReply(code: 250, enhancedCode: nil, lines: ["relay.example", "PIPELINING", "SIZE 100"])
        #expect(reply.wireString == "250-relay.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n")
        #expect(SMTPReply(550, "5.7.1", "no").wireString == "550 5.7.1 no\r\n")
    }

    @Test func textCannotInjectLines() {
        #expect(SMTPReply(550, "5.7.1", "a\r\n250 ok").wireString == "550 5.7.1 a  250 ok\r\n")
    }
}

@Suite struct SASLTests {
    @Test func plainDecoding() throws {
        let good = Base64.encode(Array("\u{0}alice\u{0}secret".utf8))
        let (u, p) = try SASL.decodePlain(good)
        #expect(u == "alice" && p == "secret")
        let same = Base64.encode(Array("alice\u{0}alice\u{0}secret".utf8))
        #expect(try SASL.decodePlain(same).username == "alice")
    }

    @Test func plainRejections() {
        func code(_ raw: String) -> Int? {
            do { _ = try SASL.decodePlain(Base64.encode(Array(raw.utf8))); return nil } catch { return error.reply.code }
        }
        #expect(code("admin\u{0}alice\u{0}secret") == 535)
        #expect(code("alice\u{0}secret") == 501)
        #expect(code("\u{0}alice\u{0}secret\u{0}x") == 501)
        #expect(code("\u{0}\u{0}secret") == 501)
        do { _ = try SASL.decodePlain("not base64!"); Issue.record("accepted") } catch { #expect(error.reply.code == 501) }
    }

    @Test func base64RoundTrip() {
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
        #expect(Base64.decode("abc") == nil)
        #expect(Base64.decode("a===") == nil)
    }
}
