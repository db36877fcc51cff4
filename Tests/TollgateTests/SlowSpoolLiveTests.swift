import Foundation
import TestSupport
import Testing

/// Overload at the disk (issue "Hardening"): a spool whose fsync takes seconds. A
/// session is answered `451 4.3.0` after `limits.store_timeout` instead of waiting
/// on the disk; the store goes on, so a message it commits is still delivered (a
/// duplicate if the client sends it again, never a loss); when the disk is fast
/// again, mail gets `250` without a restart.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(3))) struct SlowSpoolLiveTests {
        @Test func aSlowDiskIsAnswered451AndLosesNothing() throws {
            let dir = try TemporaryDirectory(label: "slow-spool")
            let spool = dir.path + "/spool", shadow = dir.path + "/shadow", trigger = dir.path + "/slow-now"
            var environment = try PowerCutShim.environment(in: dir.path, spool: spool, shadow: shadow)
            environment["POWERCUT_SLOW_WHEN"] = trigger
            environment["POWERCUT_SLOW_MS"] = "3000"
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink")
            defer { sink.stop() }
            let collector = SinkCollector(directory: sink.directory)
            let relay = try RelayProcess(rest: upstreamSection(port: sinkPort) + "\nlimits:\n  store_timeout: 1s\n", directory: dir)
            try relay.start(environment: environment)
            defer { relay.stop() }
            func send(_ marker: String) throws -> SMTPTestReply {
                try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: crashMessage(marker: marker))
            }
            #expect(try send("fast").code == 250)
            try TestFiles.write("", to: trigger)
            let slow = try send("slow")
            #expect(slow.code == 451 && slow.text.hasPrefix("4.3.0"), "\(slow)")
            #expect(relay.log.contains("did not store the message within limits.store_timeout"), "\(relay.log.suffix(2000))")
            unlink(trigger)
            var recovered = false
            for n in 0..<20 where !recovered {
                if try send("after\(n)").code == 250 { recovered = true } else { Thread.sleep(forTimeInterval: 0.5) }
            }
            #expect(recovered, "\(relay.log.suffix(2000))")
            // The slow store committed in the end: that message is delivered too.
            #expect(waitUntil(timeout: 30, interval: 0.5) { collector.delivered().isSuperset(of: ["fast", "slow"]) }, "\(collector.delivered().sorted())")
            let copies = collector.copies()
            #expect(copies.allSatisfy { $0.intact })
        }
    }
}
