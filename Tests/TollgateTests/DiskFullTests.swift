import Foundation
import TestSupport
import Testing

/// RELIABILITY E5: when the spool's disk fills, messages get a 4xx, never a 250 that
/// is then lost. The spool sits on a small tmpfs mounted by the test (needs root,
/// as `make test` and CI run).
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(3))) struct DiskFullTests {
        @Test func fullDiskAnswersTemporaryFailureAndLosesNothing() throws {
            let dir = try TemporaryDirectory()
            let mountPoint = dir.path + "/spool"
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
            let mount = try ChildProcess.run("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mountPoint], timeout: 10)
            try #require(mount.status == 0, "cannot mount a tmpfs (not root?): \(mount.stderr)")
            defer { _ = try? ChildProcess.run("umount", ["-l", mountPoint], timeout: 10) }

            // The upstream is down, so everything accepted stays in the spool.
            let relay = try RelayProcess(
                rest: """
                    upstreams:
                      - name: down
                        hosts: [127.0.0.1:\(freePort())]
                        tls: none
                    delivery:
                      retry: [1h]
                    """,
                directory: dir
            )
            try relay.start()
            defer { relay.stop() }

            var accepted: [String] = []
            var refusal: SMTPTestReply?
            for n in 0..<40 {
                let reply = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: testMessage(marker: "full\(n)", size: 200_000))
                if reply.code == 250 {
                    accepted.append(String(reply.text.split(separator: " ").last ?? ""))
                } else {
                    refusal = reply
                    break
                }
            }
            let refused = try #require(refusal, "the 3 MB spool never filled")
            #expect((400..<500).contains(refused.code), "\(refused)")
            #expect(!accepted.isEmpty)
            // The session and the server go on; nothing acknowledged is missing.
            relay.stop()
            let list = try relay.cli(["queue", "list"]).stdout
            for id in accepted { #expect(list.contains(id), "acknowledged \(id) is not in the queue") }
        }
    }
}
