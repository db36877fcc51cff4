import NIOCore
import SMTPCore
import SpoolTestSupport
import Testing
import TollgateConfiguration
import TollgateDelivery
import TollgateSpool

/// RFC 3464 delivery status notifications.
@Suite struct BounceBuilderTests {
    let builder = BounceBuilder(hostname: "relay.example.test")
    let t0 = 1_700_000_000.0

    func original(ret: String? = nil) -> SpoolMessage {
        var m = SpoolFixtures.message(
            id: "ORIG1", from: "alice@example.com", to: ["bob@example.net"], now: t0,
            header: "Received: from client by relay.example.test\r\n",
            body: "Subject: hello\r\nX-Marker: m1\r\n\r\nthe body text\r\n"
        )
        m.recipients[0].originalRecipient = "rfc822;bob@example.net"
        m.envelope.envelopeID = "ENV42"
        m.envelope.ret = ret
        return m
    }

    func failure(_ m: SpoolMessage) -> BounceBuilder.Failure {
        .init(recipient: m.recipients[0], diagnostic: "550 5.1.1 no such user", remoteMTA: "mx.example.net:25")
    }

    @Test func aBounceIsAMultipartReportFromTheNullSender() {
        let m = original()
        let dsn = builder.build(for: m, failures: [failure(m)], id: "DSN1", now: t0 + 5)
        let text = String(buffer: dsn.content)
        #expect(dsn.sender == "")
        #expect(dsn.recipients.map(\.address) == ["alice@example.com"])
        #expect(dsn.envelope.isBounce)
        #expect(dsn.id == "DSN1" && dsn.nextAttempt == t0 + 5)
        #expect(text.contains("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"DSN1/relay.example.test\""))
        #expect(text.contains("Auto-Submitted: auto-replied"))
        #expect(text.contains("Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example.test\r\n"))
        #expect(text.contains("Original-Envelope-Id: ENV42"))
        #expect(text.contains("Final-Recipient: rfc822; bob@example.net\r\nOriginal-Recipient: rfc822;bob@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.example.net:25\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n"))
        // The whole original, its trace header first.
        #expect(text.contains("Content-Type: message/rfc822\r\n\r\nReceived: from client by relay.example.test\r\nSubject: hello\r\n"))
        #expect(text.contains("the body text"))
        #expect(text.hasSuffix("\r\n--DSN1/relay.example.test--\r\n"))
    }

    @Test func retHeadersReturnsOnlyTheHeaders() {
        let m = original(ret: "HDRS")
        let text = String(buffer: builder.build(for: m, failures: [failure(m)], id: "DSN2", now: t0).content)
        #expect(text.contains("Content-Type: text/rfc822-headers\r\n\r\nReceived: from client by relay.example.test\r\nSubject: hello\r\nX-Marker: m1\r\n\r\n--DSN2"))
        #expect(!text.contains("the body text"))
    }

    /// RELIABILITY C16: a bounce must itself be deliverable over a 7-bit upstream. An
    /// 8-bit original whose body can be converted is returned whole (the client converts
    /// it on the way out); one with 8-bit header fields, which cannot be, only by its
    /// headers, as text that quoted-printable can carry.
    @Test func anEightBitOriginalStaysDeliverable() throws {
        func eightBit(_ body: String) -> SpoolMessage {
            var m = SpoolFixtures.message(id: "ORIG8", from: "alice@example.com", to: ["bob@example.net"], now: t0, header: "", body: body)
            m.envelope.eightBit = true
            return m
        }
        let convertible = eightBit("Subject: hello\r\n\r\nGrüße\r\n")
        let whole = builder.build(for: convertible, failures: [failure(convertible)], id: "DSN8", now: t0)
        #expect(String(buffer: whole.content).contains("Content-Type: message/rfc822\r\n\r\nSubject: hello\r\n\r\nGrüße\r\n"))
        #expect(whole.envelope.eightBit)

        let headers = eightBit("Subject: Grüße\r\n\r\nKörper\r\n")
        let dsn = builder.build(for: headers, failures: [failure(headers)], id: "DSN9", now: t0)
        let text = String(buffer: dsn.content)
        #expect(text.contains("Content-Type: text/rfc822-headers\r\n\r\nSubject: Grüße\r\n"))
        #expect(!text.contains("Körper"))
        let seven = try #require(SevenBitDowngrade.downgrade(dsn.content))
        #expect(seven.readableBytesView.allSatisfy { $0 < 0x80 })
        #expect(String(buffer: seven).contains("Content-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nSubject: Gr=C3=BC=C3=9Fe\r\n"))
    }

    @Test func theStatusComesFromTheReply() {
        let m = original()
        let text = String(buffer: builder.build(for: m, failures: [.init(recipient: m.recipients[0], diagnostic: "554 delivery time expired")], id: "DSN3", now: t0).content)
        #expect(text.contains("Status: 5.0.0"))
        #expect(!text.contains("Remote-MTA"))
    }
}
