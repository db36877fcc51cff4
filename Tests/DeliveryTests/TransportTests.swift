import Foundation
import NIOCore
import SpoolTestSupport
import TestSupport
import Testing
@testable import TollgateConfiguration
@testable import TollgateDelivery
@testable import TollgateSpool

/// What the transports send: the trace header, then the stored buffer.
@Suite struct TransportTests {
    let t0 = 1_700_000_000.0

    /// The header goes out before the body (DataEncoder's prefix), and SIZE= counts both.
    @Test func smtpCountsTheHeaderInTheSize() {
        let m = SpoolFixtures.message(id: "M1", now: t0, header: "Received: by relay\r\n")
        #expect(SMTPTransport.envelope(m, [0]).size == m.size)
        #expect(m.size == "Received: by relay\r\n".utf8.count + m.content.readableBytes)
    }

    @Test func theOutboxWritesTheEnvelopeTheHeaderAndTheBody() async throws {
        let dir = try TemporaryDirectory(label: "outbox")
        defer { dir.remove() }
        let transport = DirectoryTransport(directory: dir.path)
        let m = SpoolFixtures.message(id: "M1", to: ["b@example.net", "c@example.net"], now: t0, header: "Received: by relay\r\n")
        let outcome = await transport.deliver(m, to: [1])
        #expect(outcome.replies.keys.sorted() == [1] && outcome.replies[1]?.code == 250)
        let written = try String(contentsOfFile: dir.file("M1.eml"), encoding: .utf8)
        #expect(written == "Return-Path: <alice@example.com>\r\nX-Envelope-To: <c@example.net>\r\nReceived: by relay\r\nSubject: test\r\n\r\nhello\r\n")
    }

    @Test func anOutboxThatCannotBeWrittenDefers() async throws {
        let transport = DirectoryTransport(directory: "/proc/tollgate-cannot-write-here")
        let outcome = await transport.deliver(SpoolFixtures.message(id: "M1", now: t0), to: [0])
        #expect(outcome.replies[0]?.code == 451)
    }
}
