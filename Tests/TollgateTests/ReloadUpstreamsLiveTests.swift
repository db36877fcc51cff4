import Foundation
import TestSupport
import Testing

/// A SIGHUP reload applies upstream changes (issue "Operating it"): new hosts, TLS and
/// credentials reach the next delivery, not the pooled connections of the old settings,
/// and the log line names what changed — a password file rewritten under the same name
/// included.
extension LiveRelayTests {
    @Suite struct ReloadUpstreamsLiveTests {
        static func configuration(port: Int, upstream: String) -> String {
            """
            hostname: relay.test
            listeners:
              - name: relay
                address: 127.0.0.1:\(port)
                tls: none
                auth: none
            spool:
              path: spool
            log: { level: debug }
            upstreams:
              - name: primary
            \(upstream)
            delivery:
              default_upstream: primary
              retry: [1s]
            """
        }

        @Test func reloadReplacesTheUpstreamsThatChanged() throws {
            let dir = try TemporaryDirectory(label: "reload-upstreams")
            let certs = try TestCertificates.make(in: dir.path + "/certs")
            let portA = freePort(), portB = freePort()
            let sinkA = try RawSMTPSink.start(port: portA, directory: dir.path + "/a")
            defer { sinkA.stop() }
            let sinkB = try RawSMTPSink.start(port: portB, directory: dir.path + "/b", options: .init {
                $0.tls = .starttls(certs)
                $0.authUser = "relay"
                $0.authPassword = "new-secret"
            })
            defer { sinkB.stop() }
            let relay = try RelayProcess(rest: "", directory: dir)
            func write(_ upstream: String) throws {
                try Self.configuration(port: relay.port, upstream: upstream).write(toFile: relay.configPath, atomically: true, encoding: .utf8)
            }
            try write("    hosts: [127.0.0.1:\(portA)]\n    tls: none")
            try relay.start()
            defer { relay.stop() }
            func send(_ marker: String) throws {
                let reply = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: testMessage(marker: marker))
                #expect(reply.code == 250, "\(reply)")
            }
            func reload(expecting line: String) throws {
                let before = relay.log.components(separatedBy: "configuration reloaded").count
                #expect(relay.process?.signal(SIGHUP) == true)
                #expect(waitUntil(timeout: 10) { relay.log.components(separatedBy: "configuration reloaded").count > before }, "\(relay.log.suffix(2000))")
                #expect(relay.log.contains(line), "\(relay.log.suffix(2000))")
            }

            // A connection to A is pooled after the first message.
            try send("before-reload")
            #expect(waitUntil(timeout: 20) { sinkA.messages().count == 1 })

            // Now B, over STARTTLS with a login: the next message goes there, logged in.
            try "new-secret\n".write(toFile: dir.path + "/password", atomically: true, encoding: .utf8)
            try write("""
                    hosts: [127.0.0.1:\(portB)]
                    tls: required
                    ca_file: \(certs.caCertificatePath)
                    auth: { username: relay, password_file: \(dir.path)/password }
                """)
            try reload(expecting: "changed: primary (ca_file, hosts, password, tls, username)")
            try send("after-reload")
            #expect(waitUntil(timeout: 20) { sinkB.messages().count == 1 }, "\(relay.log.suffix(3000))")
            #expect(sinkB.messages().first?.authUser == "relay")
            #expect(sinkA.messages().count == 1, "nothing more over the old pooled connection")

            // Only the password file's content changes: a change all the same, and the
            // connection that logged in with the old password is not reused.
            try "wrong-secret\n".write(toFile: dir.path + "/password", atomically: true, encoding: .utf8)
            try reload(expecting: "changed: primary (password)")
            let deferred = relay.log.components(separatedBy: "delivery deferred").count
            try send("wrong-password")
            #expect(waitUntil(timeout: 20) { relay.log.components(separatedBy: "delivery deferred").count > deferred }, "\(relay.log.suffix(3000))")
            #expect(sinkB.messages().count == 1, "the new, wrong password is used: \(relay.log.suffix(2000))")

            // An unchanged configuration changes no upstream.
            try reload(expecting: "upstreams.changes=unchanged")
            #expect(!relay.log.contains("config.restart_needed"), "\(relay.log.suffix(2000))")

            // A console added by a reload is not started by it: the log says a restart is needed.
            let consolePort = freePort()
            try (Self.configuration(port: relay.port, upstream: "    hosts: [127.0.0.1:\(portA)]\n    tls: none") + "\nconsole: { address: 127.0.0.1:\(consolePort) }\n")
                .write(toFile: relay.configPath, atomically: true, encoding: .utf8)
            try reload(expecting: "config.restart_needed=console")
            #expect(relay.log.contains("these changes take effect on restart"), "\(relay.log.suffix(2000))")
            #expect((try? HTTPTestClient.request(port: consolePort, "/")) == nil, "a console was started by a reload")
        }
    }
}
