import Foundation
import TestSupport
import Testing

/// Slowloris (RELIABILITY C12): clients that trickle a command or DATA one byte at a
/// time are cut off by the deadlines (a command's deadline runs until the whole line
/// is in; `data_timeout` bounds a whole transfer), nothing they sent is queued, and
/// others are served meanwhile.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(3))) struct SlowClientLiveTests {
        @Test func tricklersAreCutOffWhileOthersAreServed() async throws {
            let relay = try RelayProcess(rest: """
                upstreams:
                  - name: out
                    directory: outbox
                limits:
                  command_timeout: 2s
                  data_timeout: 3s
                """)
            try relay.start()
            defer { relay.stop() }
            let port = relay.port
            // One byte every 300 ms of a command, and of DATA.
            async let commandTrickler: (SMTPTestReply?, Bool) = Blocking.run {
                let client = SMTPTestClient(readTimeout: 20)
                defer { client.close() }
                try client.connect(port: port)
                _ = try client.readReply()
                for byte in Array("EHLO trickle.example".utf8) {
                    if client.peerCloses(within: 0.3) { break }
                    try? client.sendRaw([byte])
                }
                let reply = try? client.readReply(timeout: 5)
                return (reply, client.peerCloses(within: 5))
            }
            async let dataTrickler: (SMTPTestReply?, Bool) = Blocking.run {
                let client = SMTPTestClient(readTimeout: 20)
                defer { client.close() }
                try client.connect(port: port)
                _ = try client.readReply()
                _ = try client.command("EHLO c", expect: 250)
                _ = try client.command("MAIL FROM:<slow@example.com>", expect: 250)
                _ = try client.command("RCPT TO:<b@example.net>", expect: 250)
                _ = try client.command("DATA", expect: 354)
                for byte in Array("Subject: slow\r\n\r\n".utf8) + Array(repeating: UInt8(ascii: "x"), count: 40) {
                    if client.peerCloses(within: 0.3) { break }
                    try? client.sendRaw([byte])
                }
                let reply = try? client.readReply(timeout: 5)
                return (reply, client.peerCloses(within: 5))
            }
            // Meanwhile an ordinary client sends a message.
            try await Task.sleep(for: .milliseconds(500))
            let served = try SMTPTestClient.sendMessage(port: port, from: "a@example.com", to: ["b@example.net"], data: testMessage(marker: "served"))
            #expect(served.code == 250)
            let (commandReply, commandClosed) = try await commandTrickler
            let (dataReply, dataClosed) = try await dataTrickler
            #expect(commandReply?.code == 421 && commandClosed, "\(String(describing: commandReply))")
            #expect(dataReply?.code == 421 && dataClosed, "\(String(describing: dataReply))")
            let queued = try relay.cli(["queue", "list"]).stdout
            #expect(!queued.contains("slow@example.com"))
            let outbox = (try? FileManager.default.contentsOfDirectory(atPath: relay.directory.path + "/outbox")) ?? []
            #expect(outbox.count == 1, "only the served message went out: \(outbox)")
        }
    }
}

/// A client that goes away mid-command or mid-DATA (RELIABILITY C13): nothing is
/// queued, and its connection slot is free again at once.
extension LiveRelayTests.SlowClientLiveTests {
    @Test(arguments: ["mid-command", "mid-data", "after-data-before-dot"])
    func aClientResetLeavesNothingAndFreesItsSlot(_ moment: String) throws {
        let relay = try RelayProcess(rest: """
            upstreams:
              - name: out
                directory: outbox
            limits:
              max_connections_per_client: 1
            """)
        try relay.start()
        defer { relay.stop() }
        let client = SMTPTestClient()
        try client.connect(port: relay.port)
        _ = try client.readReply()
        switch moment {
        case "mid-command":
            try client.sendRaw(Array("EHLO half-a-comm".utf8))
        default:
            _ = try client.command("EHLO c", expect: 250)
            _ = try client.command("MAIL FROM:<gone@example.com>", expect: 250)
            _ = try client.command("RCPT TO:<b@example.net>", expect: 250)
            _ = try client.command("DATA", expect: 354)
            try client.sendRaw(Array("Subject: cut\r\n\r\nsome content".utf8) + (moment == "mid-data" ? [] : Array("\r\n.".utf8)))
        }
        Thread.sleep(forTimeInterval: 0.2)
        client.reset()
        // The one slot this client address has is free again.
        #expect(waitUntil(timeout: 10) {
            let next = SMTPTestClient()
            defer { next.close() }
            guard (try? next.connect(port: relay.port)) != nil else { return false }
            return (try? next.readReply())?.code == 220
        }, "\(relay.log.suffix(2000))")
        let queued = try relay.cli(["queue", "list"]).stdout
        #expect(!queued.contains("gone@example.com"), "\(queued)")
        let outbox = (try? FileManager.default.contentsOfDirectory(atPath: relay.directory.path + "/outbox")) ?? []
        #expect(outbox.isEmpty, "\(outbox)")
    }
}
