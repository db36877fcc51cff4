import Foundation
import TestSupport
import Testing

/// RELIABILITY E4.1, E4.2 and E4.5: `kill -9` aimed at the three moments of a message's
/// life where a crash decides between loss, a duplicate and exactly once. The crash loop
/// (`CrashLoopTests`) kills at random moments under load; these kill at one chosen
/// moment and check the one message by name. The moment is held open by the write-order
/// shim (`Tests/Fixtures/PowerCut/powercut.c`), which can make the spool's fsync, or its
/// writes, sleep while a trigger file exists.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(3))) struct AimedKillTests {
        /// E4.1: killed in the middle of DATA. Nothing of the message is queued or
        /// delivered, and the client's second try is delivered once.
        @Test func killedInsideDataNothingIsQueuedAndTheRetryIsDeliveredOnce() throws {
            let dir = try TemporaryDirectory(label: "kill-in-data")
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink")
            defer { sink.stop() }
            let collector = SinkCollector(directory: sink.directory)
            let relay = try RelayProcess(rest: upstreamSection(port: sinkPort), directory: dir)
            try relay.start()
            defer { relay.stop() }
            let message = crashMessage(marker: "e41-cut")
            let client = try SMTPTestClient.connect(port: relay.port)
            defer { client.close() }
            try Self.openData(client)
            let stuffed = SMTPTestClient.dotStuffed(message)
            try client.sendRaw(Array(stuffed.prefix(stuffed.count / 2)))
            Thread.sleep(forTimeInterval: 0.3)
            relay.kill9()
            #expect((try? client.readReply(timeout: 2)) == nil, "no reply from a killed relay")

            try relay.start()
            #expect(try relay.cli(["queue", "list"]).stdout.contains("e41") == false)
            #expect(try Self.queueIDs(relay).isEmpty, "nothing of the cut message is queued")
            let again = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: message)
            #expect(again.code == 250)
            Self.expectDeliveredOnce("e41-cut", collector, relay)
        }

        /// E4.2: killed after the message was written to the spool, while its commit is
        /// being synced, before the `250`. The client never hears the `250`; the
        /// message survives (a kill keeps what reached the kernel) and is delivered
        /// once: the duplicate the catalogue allows arises only if the client sends it
        /// again.
        @Test func killedBetweenTheWriteAndThe250TheMessageIsDelivered() throws {
            let (dir, trigger, environment, sinkPort, relay) = try Self.heldRelay(label: "kill-before-250", slowWrites: false)
            defer { relay.stop() }
            let message = crashMessage(marker: "e42-unacked")
            let client = try SMTPTestClient.connect(port: relay.port, readTimeout: 10)
            defer { client.close() }
            try Self.openData(client)
            try TestFiles.write("", to: trigger)
            try client.sendRaw(SMTPTestClient.dotStuffed(message) + Array(".\r\n".utf8))
            // The shim says when the commit, written, is in its 4 s fsync.
            #expect(waitUntil(timeout: 3, interval: 0.01) { TestFiles.exists(trigger + ".held") })
            Thread.sleep(forTimeInterval: 0.2)
            relay.kill9()
            #expect((try? client.readReply(timeout: 2)) == nil, "the 250 never came")
            unlink(trigger)

            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink")
            defer { sink.stop() }
            let collector = SinkCollector(directory: sink.directory)
            try relay.start(environment: environment)
            Self.expectDeliveredOnce("e42-unacked", collector, relay)
        }

        /// E4.3: killed after the `250`, with the message waiting for its upstream (not
        /// being delivered): after the restart it is delivered exactly once.
        @Test func killedAfterThe250TheMessageIsDeliveredExactlyOnce() throws {
            let dir = try TemporaryDirectory(label: "kill-after-250")
            let sinkPort = freePort()
            let relay = try RelayProcess(rest: upstreamSection(port: sinkPort), directory: dir)
            try relay.start()
            defer { relay.stop() }
            let message = crashMessage(marker: "e43-once")
            #expect(try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: message).code == 250)
            #expect(waitUntil(timeout: 20) { relay.log.contains("delivery deferred") }, "\(relay.log.suffix(2000))")
            relay.kill9()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink")
            defer { sink.stop() }
            let collector = SinkCollector(directory: sink.directory)
            try relay.start()
            Self.expectDeliveredOnce("e43-once", collector, relay)
        }

        /// E4.5: killed after the upstream's `250`, before the recipient is marked done
        /// (the spool's write of the result held back). The message goes out again after
        /// the restart: exactly one duplicate, then never again.
        @Test func killedBetweenTheUpstreams250AndTheRecordTheDuplicateIsOne() throws {
            let (dir, trigger, environment, sinkPort, relay) = try Self.heldRelay(label: "kill-after-upstream-250", slowWrites: true)
            defer { relay.stop() }
            // The upstream is down: the message waits, deferred, for the retry.
            let message = crashMessage(marker: "e45-twice")
            #expect(try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: message).code == 250)
            #expect(waitUntil(timeout: 20) { relay.log.contains("delivery deferred") }, "\(relay.log.suffix(2000))")
            // The sink stores the message, then waits 1 s before its 250; in that second
            // the test makes every spool write from then on sleep 4 s first, so the
            // relay's record of the result waits with the upstream's 250 in hand.
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink", options: .init { $0.dataReplyDelay = 1 })
            defer { sink.stop() }
            let collector = SinkCollector(directory: sink.directory)
            #expect(waitUntil(timeout: 30, interval: 0.01) { collector.delivered().contains("e45-twice") }, "\(relay.log.suffix(2000))")
            try TestFiles.write("", to: trigger)
            #expect(waitUntil(timeout: 10, interval: 0.01) { TestFiles.exists(trigger + ".held") }, "\(relay.log.suffix(2000))")
            relay.kill9()
            unlink(trigger)
            #expect(collector.copies().count == 1)

            try relay.start(environment: environment)
            #expect(waitUntil(timeout: 30) { collector.copies().count == 2 }, "\(relay.log.suffix(2000))")
            #expect(waitUntil(timeout: 10) { (try? Self.queueIDs(relay))?.isEmpty == true })
            Thread.sleep(forTimeInterval: 2)
            let copies = collector.copies()
            #expect(copies.count == 2, "one duplicate, not more: \(copies.map(\.file))")
            #expect(copies.allSatisfy { $0.intact && $0.marker == "e45-twice" })
        }

        /// A relay under the write-order shim: while `trigger` exists every spool fsync
        /// (and with `slowWrites` every write) sleeps 4 s, announced by `trigger.held`.
        static func heldRelay(label: String, slowWrites: Bool) throws -> (TemporaryDirectory, String, [String: String], Int, RelayProcess) {
            let dir = try TemporaryDirectory(label: label)
            let trigger = dir.path + "/slow-now"
            var environment = try PowerCutShim.environment(in: dir.path, spool: dir.path + "/spool", shadow: dir.path + "/shadow")
            environment["POWERCUT_SLOW_WHEN"] = trigger
            environment["POWERCUT_SLOW_MS"] = "4000"
            if slowWrites { environment["POWERCUT_SLOW_WRITES"] = "1" }
            let sinkPort = freePort()
            let relay = try RelayProcess(rest: upstreamSection(port: sinkPort), directory: dir)
            try relay.start(environment: environment)
            return (dir, trigger, environment, sinkPort, relay)
        }

        /// Greeting, EHLO, MAIL, RCPT and DATA answered: content may follow.
        static func openData(_ client: SMTPTestClient) throws {
            _ = try client.readReply()
            try client.command("EHLO client.test", expect: 250)
            try client.command("MAIL FROM:<a@example.com>", expect: 250)
            try client.command("RCPT TO:<b@example.net>", expect: 250)
            try client.command("DATA", expect: 354)
        }

        /// The message tagged `marker` reaches the sink intact, the queue empties, and
        /// no second copy follows.
        static func expectDeliveredOnce(_ marker: String, _ collector: SinkCollector, _ relay: RelayProcess) {
            #expect(waitUntil(timeout: 30) { collector.delivered().contains(marker) }, "\(relay.log.suffix(2000))")
            #expect(waitUntil(timeout: 10) { (try? Self.queueIDs(relay))?.isEmpty == true })
            Thread.sleep(forTimeInterval: 1.5)
            let copies = collector.copies()
            #expect(copies.count == 1 && copies.allSatisfy { $0.intact && $0.marker == marker }, "exactly once: \(copies.map(\.file))")
        }

        /// The queue ids `tollgate queue list --json` shows (one object a line).
        static func queueIDs(_ relay: RelayProcess) throws -> [String] {
            try relay.cli(["queue", "list", "--json"]).stdout.split(separator: "\n").compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["id"] as? String
            }
        }
    }
}
