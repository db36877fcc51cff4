import Foundation
import TestSupport
import Testing

/// RELIABILITY E5: the spool's disk answers EIO (to fsync, or to every write too).
/// The relay runs under the write-order shim (``PowerCutShim``), which fails the
/// spool's syncs while a file the test creates exists and then makes nothing
/// durable. A message must then get a 4xx, never a 250; after a power cut (the
/// spool rebuilt from what was synced) every message that got 250 is delivered.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(5))) struct FsyncFailureTests {
        @Test(arguments: [false, true]) func ioErrorsAnswerTemporaryFailureAndLoseNothing(failWrites: Bool) throws {
            let dir = try TemporaryDirectory(label: "eio")
            let spool = dir.path + "/spool", shadow = dir.path + "/shadow", trigger = dir.path + "/fail-now"
            var environment = try PowerCutShim.environment(in: dir.path, spool: spool, shadow: shadow)
            environment["POWERCUT_FAIL_WHEN"] = trigger
            if failWrites { environment["POWERCUT_FAIL_WRITES"] = "1" }
            let sinkPort = freePort()
            let relay = try RelayProcess(rest: upstreamSection(port: sinkPort), directory: dir)
            try relay.start(environment: environment)
            defer { relay.stop() }

            func send(_ marker: String) throws -> SMTPTestReply {
                try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: crashMessage(marker: marker))
            }
            var acknowledged: [String] = []
            for n in 0..<5 {
                let reply = try send("before\(n)")
                #expect(reply.code == 250, "\(reply)")
                if reply.code == 250 { acknowledged.append("before\(n)") }
            }
            // The disk fails: every message is refused with a temporary error.
            try TestFiles.write("", to: trigger)
            var refusals: [SMTPTestReply] = []
            for n in 0..<5 {
                let reply = try send("failing\(n)")
                if reply.code == 250 { acknowledged.append("failing\(n)") }
                refusals.append(reply)
            }
            #expect(refusals.allSatisfy { (400..<500).contains($0.code) }, "while fsync fails: \(refusals)")
            #expect(relay.process?.isRunning == true, "the relay died on EIO: \(relay.log.suffix(2000))")
            // Each refusal is logged as one sentence with the spool's path, not GRDB's text with the SQL.
            let storeFailures = relay.log.split(separator: "\n").filter { $0.contains("could not store message") }
            #expect(!storeFailures.isEmpty && storeFailures.allSatisfy { $0.contains("in \(spool)/queue.sqlite: ") && !$0.contains("while executing") }, "\(storeFailures)")
            // The disk recovers: the relay accepts mail again, without a restart.
            unlink(trigger)
            var recovered = false
            for n in 0..<20 where !recovered {
                let reply = try send("after\(n)")
                if reply.code == 250 {
                    acknowledged.append("after\(n)")
                    recovered = true
                } else {
                    Thread.sleep(forTimeInterval: 0.5)
                }
            }
            #expect(recovered, "still refusing mail after the disk recovered: \(relay.log.suffix(2000))")

            // Power cut: only what was synced survives; then a relay without faults delivers.
            relay.kill9()
            try PowerCutShim.restore(folder: spool, shadow: shadow)
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink")
            defer { sink.stop() }
            let collector = SinkCollector(directory: sink.directory)
            try relay.start()
            let wanted = Set(acknowledged)
            #expect(waitUntil(timeout: 60, interval: 0.5) { wanted.isSubset(of: collector.delivered()) },
                    "acknowledged but lost: \(wanted.subtracting(collector.delivered()).sorted())")
            Thread.sleep(forTimeInterval: 1)
            let copies = collector.copies()
            #expect(copies.allSatisfy { $0.intact }, "damaged copies: \(copies.filter { !$0.intact }.map(\.file))")
            let refusedButDelivered = Set(copies.compactMap(\.marker)).filter { $0.hasPrefix("failing") }
            print("EIO (\(failWrites ? "fsync and writes" : "fsync")): \(acknowledged.count) acknowledged, all delivered; refused with \(Set(refusals.map(\.code)).sorted()); \(refusedButDelivered.count) refused messages delivered anyway")
            dir.remove()
        }
    }
}
