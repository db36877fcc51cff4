import Foundation
import Testing
import TestSupport

/// Faults of the upstream as real server processes show them (RELIABILITY C21, F2, F6):
/// a name that does not resolve, a refusing greeting, a connection cut in DATA. Each
/// is temporary: the next host is tried, or the message waits for a retry; none
/// bounces.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(5))) struct UpstreamFaultLiveTests {
        static func relay(hosts: [String], directory: TemporaryDirectory, upstreamSettings: String = "") throws -> RelayProcess {
            let relay = try RelayProcess(
                rest: """
                    upstreams:
                      - name: primary
                        hosts: [\(hosts.joined(separator: ", "))]
                        tls: none\(upstreamSettings)
                    delivery:
                      default_upstream: primary
                      retry: [1s]
                    """,
                directory: directory
            )
            try relay.start()
            return relay
        }

        static func send(_ relay: RelayProcess, marker: String, size: Int = 0) throws -> [UInt8] {
            let content = testMessage(marker: marker, size: size)
            let reply = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: content)
            #expect(reply.code == 250, "\(reply)")
            return content
        }

        /// Only the message itself is queued: nothing bounced.
        static func queued(_ relay: RelayProcess) throws -> [String] {
            try relay.cli(["queue", "list"]).stdout.split(separator: "\n").filter { $0.contains("<") }.map(String.init)
        }

        @Test func aNameThatDoesNotResolveIsSkippedOrDeferredNeverBounced() throws {
            let dir = try TemporaryDirectory(label: "upstream-dns")
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink", options: .init())
            defer { sink.stop() }
            // `.invalid` never resolves (RFC 6761): the next host delivers.
            let failover = try Self.relay(hosts: ["no-such-host.invalid:25", "127.0.0.1:\(sinkPort)"], directory: dir)
            let content = try Self.send(failover, marker: "dns-failover")
            #expect(waitUntil(timeout: 30) { sink.messages().count == 1 }, "\(failover.log.suffix(3000))")
            #expect(sink.messages().first.map { Array($0.content[receivedHeaderLength($0.content)...]) == content } == true)
            #expect(failover.log.contains("no-such-host.invalid"), "the failed host is logged")
            failover.stop()

            let dir2 = try TemporaryDirectory(label: "upstream-dns-only")
            let alone = try Self.relay(hosts: ["no-such-host.invalid:25"], directory: dir2)
            defer { alone.stop() }
            _ = try Self.send(alone, marker: "dns-only")
            #expect(waitUntil(timeout: 30) { alone.log.components(separatedBy: "delivery deferred").count > 2 }, "retried: \(alone.log.suffix(3000))")
            let queue = try Self.queued(alone)
            #expect(queue.count == 1 && queue[0].contains("<b@example.net>"), "\(queue)")
            #expect(!alone.log.contains("delivery failed permanently") && !alone.log.contains("bounce queued"))
        }

        @Test func aRefusingGreetingSendsTheMessageToTheNextHost() throws {
            let dir = try TemporaryDirectory(label: "upstream-greeting")
            let refusingPort = freePort()
            let refusing = try RawSMTPSink.start(port: refusingPort, directory: dir.path + "/refusing", options: .init { $0.greetingReply = "554 5.3.2 not accepting mail" })
            defer { refusing.stop() }
            let busyPort = freePort()
            let busy = try RawSMTPSink.start(port: busyPort, directory: dir.path + "/busy", options: .init { $0.greetingReply = "421 4.3.2 too busy" })
            defer { busy.stop() }
            let goodPort = freePort()
            let good = try RawSMTPSink.start(port: goodPort, directory: dir.path + "/good", options: .init())
            defer { good.stop() }
            let relay = try Self.relay(hosts: ["127.0.0.1:\(refusingPort)", "127.0.0.1:\(busyPort)", "127.0.0.1:\(goodPort)"], directory: dir)
            defer { relay.stop() }
            _ = try Self.send(relay, marker: "greeting")
            #expect(waitUntil(timeout: 30) { good.messages().count == 1 }, "\(relay.log.suffix(3000))")
            #expect(refusing.messages().isEmpty && busy.messages().isEmpty)
            #expect(try Self.queued(relay).isEmpty)
        }

        /// RELIABILITY F2: a 4xx to EHLO is temporary — the next host delivers, and with
        /// no other host the message waits for a retry; a 5xx to EHLO falls back to HELO.
        @Test func aTemporaryEhloRefusalSendsTheMessageOnAndAPermanentOneFallsBackToHelo() throws {
            let dir = try TemporaryDirectory(label: "upstream-ehlo")
            let busyPort = freePort()
            let busy = try RawSMTPSink.start(port: busyPort, directory: dir.path + "/busy", options: .init { $0.ehloReply = "451 4.3.0 busy, try later" })
            defer { busy.stop() }
            let goodPort = freePort()
            let good = try RawSMTPSink.start(port: goodPort, directory: dir.path + "/good", options: .init())
            defer { good.stop() }
            let relay = try Self.relay(hosts: ["127.0.0.1:\(busyPort)", "127.0.0.1:\(goodPort)"], directory: dir)
            _ = try Self.send(relay, marker: "ehlo-busy")
            #expect(waitUntil(timeout: 30) { good.messages().count == 1 }, "\(relay.log.suffix(3000))")
            #expect(busy.messages().isEmpty)
            relay.stop()

            let dir2 = try TemporaryDirectory(label: "upstream-ehlo-alone")
            let alone = try Self.relay(hosts: ["127.0.0.1:\(busyPort)"], directory: dir2)
            _ = try Self.send(alone, marker: "ehlo-alone")
            #expect(waitUntil(timeout: 30) { alone.log.components(separatedBy: "delivery deferred").count > 2 }, "\(alone.log.suffix(3000))")
            #expect(try Self.queued(alone).count == 1 && !alone.log.contains("bounce queued"))
            alone.stop()

            let dir3 = try TemporaryDirectory(label: "upstream-ehlo-5xx")
            let oldPort = freePort()
            let old = try RawSMTPSink.start(port: oldPort, directory: dir3.path + "/old", options: .init { $0.ehloReply = "502 5.5.1 command not recognized" })
            defer { old.stop() }
            let viaHelo = try Self.relay(hosts: ["127.0.0.1:\(oldPort)"], directory: dir3)
            defer { viaHelo.stop() }
            _ = try Self.send(viaHelo, marker: "ehlo-5xx")
            #expect(waitUntil(timeout: 30) { old.messages().count == 1 }, "\(viaHelo.log.suffix(3000))")
        }

        @Test func aConnectionCutInDataIsRetriedAndDeliveredOnce() throws {
            let dir = try TemporaryDirectory(label: "upstream-drop")
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink", options: .init { $0.dropInData = 1 })
            defer { sink.stop() }
            let relay = try Self.relay(hosts: ["127.0.0.1:\(sinkPort)"], directory: dir)
            defer { relay.stop() }
            let content = try Self.send(relay, marker: "drop-in-data")
            #expect(waitUntil(timeout: 30) { sink.messages().count == 1 }, "\(relay.log.suffix(3000))")
            #expect(relay.log.contains("delivery deferred"), "the cut attempt was a temporary failure")
            #expect(sink.messages().first.map { Array($0.content[receivedHeaderLength($0.content)...]) == content } == true)
            #expect(waitUntil(timeout: 10) { (try? Self.queued(relay))?.isEmpty == true })
            try Task.checkCancellation()
            #expect(sink.messages().count == 1, "delivered once")
        }

        /// RELIABILITY F6d: an upstream that stops reading in the middle of the content
        /// (its socket buffers full, no reply) is given up after the upstream's
        /// `data_timeout`, the attempt deferred, not bounced, and the retry delivers the
        /// message once, byte for byte.
        @Test func anUpstreamThatStallsMidContentTimesOutAndIsRetried() throws {
            let dir = try TemporaryDirectory(label: "upstream-stall")
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink", options: .init { $0.stallInData = 1 })
            defer { sink.stop() }
            let relay = try Self.relay(hosts: ["127.0.0.1:\(sinkPort)"], directory: dir, upstreamSettings: "\n    data_timeout: 2s")
            defer { relay.stop() }
            // 8 MiB: more than the socket buffers hold, so the write itself stops.
            let content = try Self.send(relay, marker: "stall-in-data", size: 8 << 20)
            #expect(waitUntil(timeout: 60) { sink.messages().count == 1 }, "\(relay.log.suffix(3000))")
            let log = relay.log
            #expect(log.contains("the upstream stopped taking the content before its end"), "\(log.suffix(3000))")
            #expect(log.contains("delivery deferred"))
            #expect(sink.messages().first.map { Array($0.content[receivedHeaderLength($0.content)...]) == content } == true)
            #expect(waitUntil(timeout: 10) { (try? Self.queued(relay))?.isEmpty == true })
            #expect(sink.messages().count == 1, "delivered once")
        }

        /// RELIABILITY B1d (the upstream side): quoted local parts, with a space or an
        /// escaped quote, reach the smarthost's `MAIL FROM` and `RCPT TO` as the very
        /// strings the client sent and the stages were given; one with an `@` inside the
        /// quotes (sender-specified routing, nmap's combination 10) is refused at RCPT.
        @Test func quotedAddressesReachTheUpstreamAsSent() throws {
            let dir = try TemporaryDirectory(label: "quoted")
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink")
            defer { sink.stop() }
            let relay = try Self.relay(hosts: ["127.0.0.1:\(sinkPort)"], directory: dir)
            defer { relay.stop() }
            let sender = #""a b"@example.com"#
            let recipients = [#""c d"@example.net"#, #""x\"y"@example.net"#]
            let client = try SMTPTestClient.connect(port: relay.port)
            defer { client.close() }
            _ = try client.readReply()
            try client.command("EHLO client.test", expect: 250)
            try client.command("MAIL FROM:<\(sender)>", expect: 250)
            let routed = try client.command(#"RCPT TO:<"relaytest@evil.example"@example.net>"#)
            #expect(routed.code == 553 && routed.text.hasPrefix("5.7.1"), "\(routed)")
            for recipient in recipients { try client.command("RCPT TO:<\(recipient)>", expect: 250) }
            try client.command("DATA", expect: 354)
            try client.sendRaw(SMTPTestClient.dotStuffed(testMessage(marker: "quoted")) + Array(".\r\n".utf8))
            #expect(try client.readReply().code == 250)
            #expect(waitUntil(timeout: 30) { sink.messages().count == 1 }, "\(relay.log.suffix(3000))")
            let delivered = try #require(sink.messages().first)
            #expect(delivered.mailFrom == sender)
            #expect(delivered.rcptTo == recipients)
        }
    }
}
