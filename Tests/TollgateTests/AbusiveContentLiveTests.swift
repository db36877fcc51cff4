import Foundation
import Testing
import TestSupport

/// Huge or abusive headers and MIME (RELIABILITY C14) through a live relay to a sink
/// that keeps the exact bytes: each message is accepted and relayed intact (Tollgate
/// does not parse MIME; the `data` phase reads at most the first 100 KB of headers),
/// lines over 998 octets reach the upstream folded, and the relay goes on serving.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(5))) struct AbusiveContentLiveTests {
        static func message(_ name: String) -> [UInt8] {
            var text = "From: a@example.com\r\nTo: b@example.net\r\nSubject: \(name)\r\nMessage-ID: <\(name)@test>\r\n"
            switch name {
            case "one-megabyte-header-line":
                text += "X-Long: " + String(repeating: "a", count: 1 << 20) + "\r\n\r\nbody\r\n"
            case "200k-of-headers":
                for i in 0..<2_000 { text += "X-Header-\(i): " + String(repeating: "h", count: 80) + "\r\n" }
                text += "\r\nbody\r\n"
            case "100000-mime-parts":
                text += "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
                for i in 0..<100_000 { text += "--b\r\nContent-Type: text/plain\r\n\r\npart \(i)\r\n" }
                text += "--b--\r\n"
            default:  // "mime-nesting-depth-100"
                text += "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n"
                for depth in 1..<100 { text += "--b\(depth - 1)\r\nContent-Type: multipart/mixed; boundary=\"b\(depth)\"\r\n\r\n" }
                text += "--b99\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--b99--\r\n"
                for depth in (0..<99).reversed() { text += "--b\(depth)--\r\n" }
            }
            return Array(text.utf8)
        }

        /// Undoes the upstream folding of long lines (`<CRLF><SP>` every 998 octets).
        static func unfoldLongLines(_ bytes: [UInt8], original: [UInt8]) -> [UInt8] {
            guard bytes.count != original.count else { return bytes }
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            var lineLength = 0
            var i = 0
            while i < bytes.count {
                if lineLength == 998, i + 2 < bytes.count, bytes[i] == 13, bytes[i + 1] == 10, bytes[i + 2] == 32 {
                    // The inserted space starts the next upstream line and counts in it.
                    i += 3
                    lineLength = 1
                    continue
                }
                out.append(bytes[i])
                lineLength = bytes[i] == 10 ? 0 : lineLength + 1
                i += 1
            }
            return out
        }

        @Test(arguments: ["one-megabyte-header-line", "200k-of-headers", "100000-mime-parts", "mime-nesting-depth-100"])
        func relayedIntactAndTheRelayGoesOn(_ name: String) throws {
            let dir = try TemporaryDirectory(label: "abusive")
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink", options: .init())
            defer { sink.stop() }
            let relay = try RelayProcess(
                rest: """
                    upstreams:
                      - name: primary
                        hosts: [127.0.0.1:\(sinkPort)]
                        tls: none
                    delivery:
                      default_upstream: primary
                      retry: [1s]
                    """,
                directory: dir
            )
            try relay.start()
            defer { relay.stop() }
            let content = Self.message(name)
            let reply = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: content)
            #expect(reply.code == 250, "\(reply)")
            #expect(waitUntil(timeout: 30) { sink.messages().count == 1 }, "\(relay.log.suffix(2000))")
            let got = try #require(sink.messages().first)
            #expect(isCanonical(got.raw))
            // No line over 998 octets upstream.
            var longest = 0
            var run = 0
            for byte in got.content {
                if byte == 10 { longest = max(longest, run - 1); run = 0 } else { run += 1 }
            }
            #expect(longest <= 998, "a \(longest)-octet line went upstream")
            let relayed = Array(got.content[receivedHeaderLength(got.content)...])
            let unfolded = Self.unfoldLongLines(relayed, original: content)
            let intact = unfolded == content
            #expect(intact, "content changed beyond folding: \(unfolded.count) octets for \(content.count), first difference at \(zip(unfolded, content).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(unfolded.count, content.count))")
            // The relay still serves.
            let next = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: testMessage(marker: "after-\(name)"))
            #expect(next.code == 250)
        }
    }
}
