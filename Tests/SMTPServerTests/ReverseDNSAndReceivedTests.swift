import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SMTPCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import SMTPServer

/// The client's name in the `Received:` header (RELIABILITY C21) and what the header
/// makes of hostile EHLO names and recipients (C18).
@Suite struct ReverseDNSAndReceivedTests {
    @Test func loopbackIsForwardConfirmedAsLocalhost() {
        // /etc/hosts maps 127.0.0.1 to localhost, and localhost back to 127.0.0.1.
        #expect(ReverseDNS.forwardConfirmedName("127.0.0.1") == "localhost")
        #expect(ReverseDNS.resolve("127.0.0.1") == ReverseDNS.Answer(ptr: "localhost", name: "localhost"))
        // No PTR record (TEST-NET-1 is never delegated), or not an address at all.
        #expect(ReverseDNS.forwardConfirmedName("not-an-address") == nil)
    }

    @Test func aSlowResolverDoesNotHoldTheSession() async throws {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let finished = NIOLockedValueBox(false)
        let slow = ReverseDNS(timeout: .milliseconds(50), pool: pool) { _ in
            usleep(2_000_000)
            finished.withLockedValue { $0 = true }
            return ReverseDNS.Answer(ptr: "late.example", name: "late.example")
        }
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        // Nothing: the deadline answered, not the lookup (which says "late.example").
        #expect(await slow.names(for: "192.0.2.1", eventLoop: loop) == ReverseDNS.Answer())
        // A PTR name that does not resolve back: kept as the PTR name, not as the client's name.
        let quick = ReverseDNS(timeout: .seconds(10), pool: pool) { _ in ReverseDNS.Answer(ptr: "spoofed.example") }
        #expect(await quick.names(for: "192.0.2.1", eventLoop: loop) == ReverseDNS.Answer(ptr: "spoofed.example"))
        try await pool.shutdownGracefully()
        #expect(finished.withLockedValue { $0 })
    }

    @Test func receivedHeaderCarriesTheNameAndNothingAClientInjects() {
        let named = ReceivedHeader.make(helo: "pc1.example", clientAddress: "192.0.2.1", clientName: "pc1.corp.example", hostname: "relay.test", protocolName: "ESMTP", queueID: "Q1", recipient: nil, date: 0)
        #expect(named.hasPrefix("Received: from pc1.example (pc1.corp.example [192.0.2.1])\r\n\tby relay.test (Tollgate) with ESMTP id Q1;"))
        let unknown = ReceivedHeader.make(helo: nil, clientAddress: "192.0.2.1", hostname: "relay.test", protocolName: "ESMTP", queueID: "Q1", recipient: nil, date: 0)
        #expect(unknown.hasPrefix("Received: from unknown ([192.0.2.1])"))
        let hostile = ReceivedHeader.make(
            helo: "x;\r\nX-Injected: yes (" + String(repeating: "a", count: 400) + "é",
            clientAddress: "192.0.2.1", hostname: "relay.test", protocolName: "ESMTP", queueID: "Q1",
            recipient: "a;b(c)@example.net", date: 0
        )
        let lines = hostile.split(separator: "\r\n", omittingEmptySubsequences: false)
        #expect(lines.count == 4, "only the header's own line breaks: \(lines)")
        #expect(!hostile.contains("X-Injected: yes"))
        #expect(lines[0].hasPrefix("Received: from x___X-Injected:_yes__aaa"))
        #expect(lines[0].utf8.count < 300, "the name is bounded")
        #expect(hostile.utf8.allSatisfy { $0 < 0x80 }, "no 8-bit octets")
        #expect(lines[2].hasPrefix("\tfor <a_b_c_@example.net>;"))
    }
}
