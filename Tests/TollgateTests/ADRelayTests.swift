import Foundation
import TestSupport
import Testing

/// The README's Active Directory example (Plugins/LDAP/README.md, the block between
/// the `ad-example` markers) in a live relay, as written except for the DC
/// addresses and the two file paths, against two Samba AD DCs.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(10))) struct ADRelayTests {
        static var readme: String { PolicyRelayTests.repositoryRoot + "/Plugins/LDAP/README.md" }

        /// The example block, with the lines naming DCs and files replaced.
        static func example(uris: [String], caFile: String, passwordFile: String) throws -> String {
            let text = try String(contentsOfFile: readme, encoding: .utf8)
            guard let start = text.range(of: "<!-- ad-example"), let end = text.range(of: "<!-- end ad-example -->"),
                let open = text.range(of: "```yaml\n", range: start.upperBound..<end.lowerBound),
                let close = text.range(of: "```", range: open.upperBound..<end.lowerBound)
            else { throw TestFailure("no ad-example block in \(readme)") }
            var lines = text[open.upperBound..<close.lowerBound].split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            func replace(_ key: String, _ value: String) throws {
                guard let index = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix(key + ":") }) else {
                    throw TestFailure("the README example has no \(key)")
                }
                let indent = lines[index].prefix { $0 == " " }
                lines[index] = indent + key + ": " + value
            }
            try replace("uri", uris.joined(separator: " "))
            try replace("ca_file", caFile)
            try replace("bind_password_file", passwordFile)
            return lines.joined(separator: "\n")
        }

        struct Setup {
            let dcs: [SambaDC]
            let relay: RelayProcess
            let certs: TestCertificates

            func send(user: String, password: String, from: String) throws -> String {
                try Swaks.send(
                    port: relay.port, from: from, to: ["someone@example.net"],
                    options: ["-tls", "--tls-verify", "--tls-ca-path", certs.caCertificatePath, "-a", "PLAIN", "-au", user, "-ap", password]
                ).transcript
            }

            func shutdown() async {
                relay.stop()
                for dc in dcs { await dc.shutdown() }
            }
        }

        func start() async throws -> Setup {
            let first = try await SambaDC.start()
            let second: SambaDC
            do { second = try await SambaDC.start() } catch {
                await first.shutdown()
                throw error
            }
            let dir = try TemporaryDirectory(label: "ad-relay")
            let certs = try TestCertificates.make(in: dir.path + "/certs")
            try SambaDC.Account.relay.password.write(toFile: dir.path + "/ldap.pw", atomically: true, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: dir.path + "/policies", withIntermediateDirectories: true)
            try """
                department: finance
                members:
                  ldap_groups: ["\(SambaDC.financeGroup)"]
                sender-allowlist:
                  senders: ["payroll@example.test"]
                rate-limit:
                  - { key: user, messages: 4, per: 1h }
                """.write(toFile: dir.path + "/policies/finance.yaml", atomically: true, encoding: .utf8)
            let stage = try Self.example(uris: [first.ldapsURI, second.ldapsURI], caFile: first.caFile, passwordFile: dir.path + "/ldap.pw")
            // Messages stay queued (the upstream is down) so that `queue show` can read them.
            let held = freePort()
            let relay = try RelayProcess(
                listener: "tls: starttls\n    auth: required",
                rest: """
                    tls:
                      certificate: \(certs.certificatePath)
                      key: \(certs.keyPath)
                    upstreams:
                      - name: held
                        hosts: [127.0.0.1:\(held)]
                        tls: none
                    delivery:
                      default_upstream: held
                      retry: [1h]
                    stages:
                    \(stage)
                      - use: sender-allowlist
                        settings: {}
                      - use: rate-limit
                        settings: {}
                    policies: \(dir.path)/policies
                    """,
                directory: dir
            )
            let check = try relay.cli(["check"])
            guard check.status == 0 else {
                await first.shutdown()
                await second.shutdown()
                throw TestFailure("tollgate check refused the README's AD example: \(check.stdout) \(check.stderr)")
            }
            try relay.start()
            return Setup(dcs: [first, second], relay: relay, certs: certs)
        }

        @Test func readmeExampleAgainstTwoDomainControllers() async throws {
            let s = try await start()
            do {
                try await run(s)
            } catch {
                await s.shutdown()
                throw error
            }
            await s.shutdown()
        }

        func run(_ s: Setup) async throws {
            typealias Account = SambaDC.Account
            let alice = Account.alice
            // Three login forms, three addresses (primary, alias, the shared mailbox she is a delegate of).
            let sends = [
                (alice.rawValue, "alice@finance.example.test"), (alice.downLevel, "a.andersen@finance.example.test"),
                (alice.upn, SambaDC.teamAddress),
            ]
            var ids: [String] = []
            for (user, from) in sends {
                let t = try s.send(user: user, password: alice.password, from: from)
                #expect(t.contains("<~  235 2.7.0"), "\(user): \(t)")
                #expect(t.contains("<~  250 2.0.0 Ok: queued as"), "\(user) as \(from): \(t)")
                if let id = t.split(separator: "\n").first(where: { $0.contains("queued as") })?.split(separator: " ").last {
                    ids.append(String(id))
                }
            }
            // One user whatever the form: the queue says alice, department finance.
            for id in ids {
                let show = try s.relay.cli(["queue", "show", id]).stdout
                #expect(show.contains("user:        alice\n"), "\(show)")
                #expect(show.contains("department:  finance"), "\(show)")
            }
            // ... and one rate limit (4 per hour): the fourth message goes, the fifth waits.
            #expect(try s.send(user: alice.upn, password: alice.password, from: "alice@finance.example.test").contains("<~  250 2.0.0 Ok: queued"))
            let fifth = try s.send(user: alice.downLevel, password: alice.password, from: "alice@finance.example.test")
            #expect(fifth.contains("<~* 451 4.7.1"), "\(fifth)")

            // bob: finance through finance-payroll; not a delegate of the shared mailbox.
            let bob = try s.send(user: "bob", password: Account.bob.password, from: "bob@finance.example.test")
            #expect(bob.contains("<~  250 2.0.0 Ok: queued"), "\(bob)")
            let bobTeam = try s.send(user: "bob", password: Account.bob.password, from: SambaDC.teamAddress)
            #expect(bobTeam.contains("<~* 553 5.7.1"), "\(bobTeam)")
            // X400 and SIP values are not addresses.
            #expect(try s.send(user: "alice", password: alice.password, from: "alice@example.test").contains("<~* 553 5.7.1"))

            // Disabled, locked, expired, must-change, not in relay-users: 535 with the right password.
            for account in [Account.dave, .erin, .frank, .grace, .carol] {
                let t = try s.send(user: account.rawValue, password: account.password, from: "\(account.rawValue)@example.test")
                #expect(t.contains("<~* 535 5.7.8"), "\(account): \(t)")
            }

            // One DC stopped: logins go on.
            await s.dcs[0].stop()
            let during = try s.send(user: Account.bob.upn, password: Account.bob.password, from: "bob@finance.example.test")
            #expect(during.contains("<~  235 2.7.0"), "\(during)")
            // Both stopped: a user never cached gets 454; alice is cached (cache_ttl 5m) and still works.
            await s.dcs[1].stop()
            let outage = try s.send(user: "EXAMPLE\\bob", password: Account.bob.password, from: "bob@finance.example.test")
            #expect(outage.contains("<~* 454 4.7.0"), "\(outage)")
            #expect(try s.send(user: "alice", password: alice.password, from: "payroll@example.test").contains("<~  235 2.7.0"))
        }
    }
}
