import Foundation
import TestSupport
import Testing

/// The whole pipeline in a live relay: the bundled plugins loaded from their shared
/// objects, authenticating against a real slapd, the example department policies.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(5))) struct PolicyRelayTests {
        static var repositoryRoot: String { PluginLoaderTests.repositoryRoot }

        struct Setup {
            let slapd: Slapd
            let relay: RelayProcess
            let certs: TestCertificates
            let held: Int

            /// AUTH PLAIN over STARTTLS with swaks; returns the transcript.
            func send(user: String, password: String, from: String, to: String = "someone@example.net") throws -> String {
                try Swaks.send(
                    port: relay.port, from: from, to: [to],
                    options: ["-tls", "--tls-verify", "--tls-ca-path", certs.caCertificatePath, "-a", "PLAIN", "-au", user, "-ap", password]
                ).transcript
            }
        }

        /// A relay whose finance route goes to an upstream that is down, so finance's
        /// messages stay queued for `queue show`.
        func start(extraLimits: String = "", log: String = "{ level: debug }", metricsPort: Int? = nil) async throws -> Setup {
            let slapd = try await Slapd.start()
            let dir = try TemporaryDirectory()
            let certs = try TestCertificates.make(in: dir.path + "/certs")
            let held = freePort()
            let relay = try RelayProcess(
                listener: "tls: starttls\n    auth: required",
                log: log,
                rest: """
                    tls:
                      certificate: \(certs.certificatePath)
                      key: \(certs.keyPath)
                    upstreams:
                      - name: outbox
                        directory: outbox
                      - name: finance-outbox
                        hosts: [127.0.0.1:\(held)]
                        tls: none
                    delivery:
                      default_upstream: outbox
                      retry: [1h]
                    stages:
                      - use: ldap
                        timeout: 3s
                        settings:
                          \(slapd.ldapSettings(indent: 6))
                          department_attribute: departmentNumber
                          timeout: 1s
                          cache_ttl: 5m
                          negative_cache_ttl: 1s
                      - use: sender-allowlist
                        settings: {}
                      - use: rate-limit
                        settings:
                          limits:
                            - { key: user, messages: 3, per: 1h }
                    policies: \(Self.repositoryRoot)/policies
                    \(metricsPort.map { "metrics: { address: 127.0.0.1:\($0) }" } ?? "")
                    \(extraLimits.isEmpty ? "" : "limits:\n  " + extraLimits)
                    """,
                directory: dir
            )
            try relay.start()
            return Setup(slapd: slapd, relay: relay, certs: certs, held: held)
        }

        /// The ldap plugin's own counters (ABI 3's stage metrics) in the relay's
        /// `/metrics`: a first login asks slapd (a miss, one positive entry), a second
        /// with the same credentials is answered from the cache and moves the hit
        /// counter. Also every `tollgate_ldap_…` name the Grafana dashboard uses.
        @Test func ldapCacheHitsReachMetrics() async throws {
            let metricsPort = freePort()
            let s = try await start(metricsPort: metricsPort)
            defer { s.relay.stop() }
            defer { Task { await s.slapd.stop() } }
            let scrape = { try OperatorMetricsLiveTests.scrape(metricsPort) }
            let value = { (text: String, series: String) in OperatorMetricsLiveTests.value(text, series) }

            let first = try s.send(user: "alice", password: "alice-pw", from: "alice@finance.example.com")
            #expect(first.contains("<~  235 2.7.0"), "\(first)")
            let afterFirst = try scrape()
            #expect(afterFirst.contains("# TYPE tollgate_ldap_cache_hits_total counter"), "\(afterFirst.suffix(2000))")
            #expect(value(afterFirst, "tollgate_ldap_cache_hits_total{stage=\"ldap\"}") == 0, "\(afterFirst.suffix(2000))")
            #expect(value(afterFirst, "tollgate_ldap_cache_misses_total{stage=\"ldap\"}") == 1)
            #expect(value(afterFirst, "tollgate_ldap_directory_results_total{stage=\"ldap\",result=\"success\"}") == 1)
            #expect(value(afterFirst, "tollgate_ldap_cache_entries{stage=\"ldap\",kind=\"positive\"}") == 1)

            let second = try s.send(user: "alice", password: "alice-pw", from: "alice@finance.example.com")
            #expect(second.contains("<~  235 2.7.0"), "\(second)")
            let afterSecond = try scrape()
            #expect(value(afterSecond, "tollgate_ldap_cache_hits_total{stage=\"ldap\"}") == 1, "\(afterSecond.suffix(2000))")
            #expect(value(afterSecond, "tollgate_ldap_cache_misses_total{stage=\"ldap\"}") == 1)
            #expect(value(afterSecond, "tollgate_ldap_directory_results_total{stage=\"ldap\",result=\"success\"}") == 1)

            let used = try GrafanaDashboardLiveTests.expressions().reduce(into: Set<String>()) { $0.formUnion(GrafanaDashboardLiveTests.names(in: $1)) }
            let ldap = used.filter { $0.hasPrefix("tollgate_ldap_") }
            #expect(ldap.count >= 3, "\(ldap.sorted())")
            #expect(GrafanaDashboardLiveTests.missing(ldap, in: afterSecond) == [], "\(afterSecond.suffix(2000))")
        }

        @Test func authenticationAndSenderRules() async throws {
            let s = try await start()
            defer { s.relay.stop() }
            defer { Task { await s.slapd.stop() } }

            // Good login, own address: accepted, routed by the finance policy, trace recorded.
            let own = try s.send(user: "alice", password: "alice-pw", from: "alice@finance.example.com")
            #expect(own.contains("<~  235 2.7.0"), "\(own)")
            #expect(own.contains("<~  250 2.0.0 Ok: queued as"), "\(own)")
            let id = try #require(own.split(separator: "\n").first { $0.contains("queued as") }?.split(separator: " ").last.map(String.init))
            #expect(await waitUntil(timeout: 10) { ((try? s.relay.cli(["queue", "list", "--department", "finance"]))?.stdout ?? "").contains(id) })
            let show = try s.relay.cli(["queue", "show", id]).stdout
            #expect(show.contains("user:        alice"))
            #expect(show.contains("department:  finance"))
            #expect(show.contains("upstream:    finance-outbox"))
            #expect(try s.relay.cli(["queue", "list", "--upstream", "finance-outbox"]).stdout.contains(id))
            #expect(try s.relay.cli(["queue", "list", "--upstream", "outbox"]).stdout.contains(id) == false)
            #expect(show.contains("auth ldap: accept"))
            #expect(show.contains("mail sender-allowlist: continue"))

            // Department-allowed address (finance: payroll@example.com).
            #expect(try s.send(user: "alice", password: "alice-pw", from: "payroll@example.com").contains("<~  250 2.0.0 Ok: queued"))
            // Someone else's address.
            let other = try s.send(user: "alice", password: "alice-pw", from: "bob@engineering.example.com")
            #expect(other.contains("<~* 553 5.7.1"), "\(other)")
            // User in no department may still send as their own address, and nothing else.
            #expect(try s.send(user: "dave", password: "dave-pw", from: "dave@example.com").contains("<~  250 2.0.0 Ok: queued"))
            #expect(try s.send(user: "dave", password: "dave-pw", from: "payroll@example.com").contains("<~* 553 5.7.1"))

            // RELIABILITY B1d: the stage judges the address the upstream will be given.
            // An allowed address inside quotes is a local part of another domain…
            for spoof in [#""payroll@example.com"@evil.example"#, #""alice@finance.example.com"@evil.example"#, #"alice@finance.example.com@evil.example"#] {
                let t = try s.send(user: "alice", password: "alice-pw", from: spoof)
                #expect(!t.contains("<~  250 2.0.0 Ok: queued"), "\(t)")
            }
            // …and a quoted local part in an allowed domain is that domain's.
            let quoted = try s.send(user: "alice", password: "alice-pw", from: #""a b"@finance.example.com"#)
            #expect(quoted.contains("<~  250 2.0.0 Ok: queued"), "\(quoted)")
            let quotedID = try #require(quoted.split(separator: "\n").first { $0.contains("queued as") }?.split(separator: " ").last.map(String.init))
            let quotedShow = try s.relay.cli(["queue", "show", quotedID]).stdout
            #expect(quotedShow.contains(#""a b"@finance.example.com"#), "\(quotedShow)")
        }

        /// `log.format: json` at the most detailed level (SPEC §8): every line one JSON
        /// object with dotted keys, the `accepted`, `refused` and `delivery` events with
        /// their fields — and no password, AUTH exchange or message body anywhere.
        @Test func jsonLogsCarryTheEventsAndNeverCredentialsOrBodies() async throws {
            let s = try await start(log: "{ level: trace, format: json }")
            defer { s.relay.stop() }
            defer { Task { await s.slapd.stop() } }
            // alice's finance route is down (deferred); dave's mail goes to the outbox.
            #expect(try s.send(user: "alice", password: "alice-pw", from: "alice@finance.example.com").contains("<~  250 2.0.0 Ok: queued"))
            #expect(try s.send(user: "dave", password: "dave-pw", from: "dave@example.com", to: "x@example.net").contains("<~  250 2.0.0 Ok: queued"))
            #expect(try s.send(user: "alice", password: "Wr0ng-Secret-7", from: "alice@finance.example.com").contains("<~* 535 5.7.8"))
            #expect(try s.send(user: "dave", password: "dave-pw", from: "payroll@example.com").contains("<~* 553 5.7.1"))
            #expect(await waitUntil(timeout: 20) { s.relay.log.contains("\"delivery.result\":\"sent\"") && s.relay.log.contains("\"delivery.result\":\"deferred\"") }, "\(s.relay.log.suffix(2000))")
            let log = s.relay.log
            for secret in ["alice-pw", "Wr0ng-Secret-7", "dave-pw", Data("\u{0}alice\u{0}alice-pw".utf8).base64EncodedString(), Data("\u{0}dave\u{0}dave-pw".utf8).base64EncodedString(), "This is a test mailing"] {
                #expect(!log.contains(secret), "\(secret) is in the log")
            }
            var events: [[String: String]] = []
            for line in log.split(separator: "\n") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String] else {
                    Issue.record("not one JSON object of strings: \(line)")
                    continue
                }
                // swift-service-lifecycle's own keys (`sl-…`) are the library's.
                for key in object.keys where !["ts", "level", "logger", "msg", "event"].contains(key) && !key.hasPrefix("sl-") {
                    #expect(key.range(of: #"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$"#, options: .regularExpression) != nil, "key \(key) in \(line)")
                }
                if object["event"] != nil { events.append(object) }
            }
            let accepted = try #require(events.first { $0["event"] == "accepted" && $0["policy.user"] == "dave" })
            for key in ["queue.id", "client.address", "policy.user", "policy.department", "smtp.mail.from", "smtp.rcpt.count", "message.size"] {
                #expect(accepted[key] != nil, "accepted has no \(key): \(accepted)")
            }
            #expect(accepted["client.address"] == "127.0.0.1" && accepted["smtp.rcpt.count"] == "1")
            #expect(events.contains { $0["event"] == "accepted" && $0["policy.user"] == "alice" && $0["policy.department"] == "finance" })
            let refused = try #require(events.first { $0["event"] == "refused" })
            #expect(refused["policy.stage"] == "sender-allowlist", "\(refused)")
            #expect(refused["smtp.reply"]?.hasPrefix("553") == true && refused["policy.user"] == "dave", "\(refused)")
            let delivery = try #require(events.first { $0["event"] == "delivery" && $0["delivery.result"] == "sent" })
            #expect(events.contains { $0["event"] == "delivery" && $0["delivery.result"] == "deferred" && $0["upstream.name"] == "finance-outbox" })
            #expect(delivery["queue.id"] == accepted["queue.id"] && delivery["delivery.result"] == "sent" && delivery["upstream.name"] == "outbox", "\(delivery)")
            #expect(delivery["smtp.rcpt.to"] == "x@example.net" && delivery["delivery.delay"] != nil)
            // message.size is what was stored and sent: the outbox file less its envelope lines.
            let eml = try #require(TestFiles.read(s.relay.directory.path + "/outbox/\(accepted["queue.id"] ?? "").eml"))
            let envelope = String(decoding: eml, as: UTF8.self).components(separatedBy: "\r\n").prefix { $0.hasPrefix("Return-Path: ") || $0.hasPrefix("X-Envelope-To: ") }
            #expect(accepted["message.size"] == "\(eml.count - envelope.map { $0.utf8.count + 2 }.reduce(0, +))", "\(accepted)")
        }

        /// A name and an address a client chose, with spaces and `key=` in them, stay one
        /// field each in the text log: no line gains an `event` or `queue.id` it was not given.
        @Test func textLogsKeepWhatAClientChoseInOneField() async throws {
            let s = try await start(log: "{ level: info, format: text }")
            defer { s.relay.stop() }
            defer { Task { await s.slapd.stop() } }
            let name = "x event=accepted queue.id=FORGED \"y=z\""
            #expect(try s.send(user: name, password: "nope", from: "alice@finance.example.com").contains("<~* 535 5.7.8"))
            let sender = "\"p event=accepted queue.id=FORGED\"@example.com"
            let refused = try s.send(user: "dave", password: "dave-pw", from: sender)
            #expect(refused.contains("<~* 553 5.7.1"), "\(refused)")
            #expect(await waitUntil(timeout: 10) { s.relay.log.contains("event=refused") }, "\(s.relay.log.suffix(2000))")
            var sawName = false, sawSender = false
            for line in s.relay.log.split(separator: "\n") where line.contains(" tollgate: ") {
                guard let fields = LogHandlerTests.logfmtFields(String(line)) else {
                    Issue.record("a logfmt reader refuses: \(line)")
                    continue
                }
                #expect(Set(fields.map(\.key)).count == fields.count, "a key twice: \(line)")
                #expect(!fields.contains { $0.key == "queue.id" && $0.value == "FORGED" }, "\(line)")
                #expect(!fields.contains { $0.key == "event" && $0.value == "accepted" }, "\(line)")
                if fields.contains(where: { $0.key == "smtp.auth.user" && $0.value == name }) { sawName = true }
                if fields.contains(where: { $0.key == "event" && $0.value == "refused" }) {
                    #expect(fields.contains { $0.key == "smtp.mail.from" && $0.value == sender }, "\(line)")
                    sawSender = true
                }
            }
            #expect(sawName && sawSender, "\(s.relay.log.suffix(3000))")
            // The listener's address as the configuration writes it.
            #expect(s.relay.log.contains("smtp.listener.address=127.0.0.1:\(s.relay.port) "), "\(s.relay.log.prefix(3000))")
        }

        @Test func badCredentialsAndInjectionAreRefused() async throws {
            let s = try await start()
            defer { s.relay.stop() }
            defer { Task { await s.slapd.stop() } }
            #expect(try s.send(user: "alice", password: "wrong", from: "alice@finance.example.com").contains("<~* 535 5.7.8"))
            #expect(try s.send(user: "nosuchuser", password: "x", from: "a@example.com").contains("<~* 535 5.7.8"))
            for user in ["*", "bob)(uid=*", "admin)(|(uid=*", "*)(uid=*", "alice\\"] {
                let t = try s.send(user: user, password: "alice-pw", from: "alice@finance.example.com")
                #expect(t.contains("<~* 535 5.7.8"), "\(user): \(t)")
            }
            // Empty password: refused before any bind reaches the directory.
            let binds = s.slapd.bindRequests(dn: "uid=alice,\(Slapd.peopleDN)")
            let empty = try Swaks.send(
                port: s.relay.port, from: "alice@finance.example.com", to: ["x@example.net"],
                options: ["-tls", "--tls-ca-path", s.certs.caCertificatePath, "-a", "PLAIN", "-au", "alice", "-ap", "<>"]
            ).transcript
            #expect(empty.contains("535"), "\(empty)")
            #expect(s.slapd.bindRequests(dn: "uid=alice,\(Slapd.peopleDN)") == binds)
        }

        @Test func rateLimitCountsAcceptedMail() async throws {
            let s = try await start()
            defer { s.relay.stop() }
            defer { Task { await s.slapd.stop() } }
            for _ in 0..<3 {
                #expect(try s.send(user: "dave", password: "dave-pw", from: "dave@example.com").contains("<~  250 2.0.0 Ok: queued"))
            }
            let fourth = try s.send(user: "dave", password: "dave-pw", from: "dave@example.com")
            #expect(fourth.contains("<~* 451 4.7.1"), "\(fourth)")
        }

        @Test func directoryOutageIsTemporaryAndRecovers() async throws {
            let s = try await start()
            defer { s.relay.stop() }
            defer { Task { await s.slapd.stop() } }
            await s.slapd.stop()
            let down = try s.send(user: "bob", password: "bob-pw", from: "bob@engineering.example.com")
            #expect(down.contains("<~* 454 4.7.0"), "\(down)")
            try await s.slapd.restart()
            let back = try s.send(user: "bob", password: "bob-pw", from: "bob@engineering.example.com")
            #expect(back.contains("<~  250 2.0.0 Ok: queued"), "\(back)")
        }

        /// RELIABILITY D4: 100 logins at once against a directory that is slow (frozen
        /// 300 ms of every 400): each is answered — `535` for these unknown users or
        /// `454 4.7.0` when the stage's time limit ran out, never a success — within the
        /// limits, and the relay serves normally afterwards.
        @Test func manyLoginsAgainstASlowDirectoryAreEachAnsweredInTime() async throws {
            // All from one address: the per-client failure limit (C11) would answer most.
            let s = try await start(extraLimits: "max_auth_failures_per_client: 0")
            defer { s.relay.stop() }
            defer { Task { await s.slapd.stop() } }
            let script = s.relay.directory.path + "/logins.py"
            try TestFiles.write(#"""
                import smtplib, ssl, sys, threading, time, base64
                port, ca, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
                results = [None] * n
                def login(i):
                    t0 = time.monotonic()
                    try:
                        ctx = ssl.create_default_context(cafile=ca)
                        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
                            c.ehlo("load.example"); c.starttls(context=ctx); c.ehlo("load.example")
                            token = base64.b64encode(b"\0nobody%d\0pw" % i).decode()
                            code, _ = c.docmd("AUTH", "PLAIN " + token)
                    except Exception as e:
                        code = "error: %s" % e
                    results[i] = (code, time.monotonic() - t0)
                threads = [threading.Thread(target=login, args=(i,)) for i in range(n)]
                for t in threads: t.start()
                for t in threads: t.join()
                for code, seconds in results: print(code, "%.2f" % seconds)
                """#, to: script)
            let slapd = s.slapd
            let slow = Task {
                while !Task.isCancelled {
                    slapd.pause()
                    try? await Task.sleep(for: .milliseconds(300))
                    slapd.resume()
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            let run = try await ChildProcess.runAsync("python3", [script, "\(s.relay.port)", s.certs.caCertificatePath, "100"], timeout: 120)
            slow.cancel()
            _ = await slow.value
            slapd.resume()
            let results = run.stdout.split(separator: "\n").map { $0.split(separator: " ") }
            #expect(results.count == 100, "\(run.stdout) \(run.stderr)")
            let codes = results.map { String($0.first ?? "") }
            #expect(codes.allSatisfy { $0 == "535" || $0 == "454" }, "\(Dictionary(grouping: codes, by: { $0 }).mapValues(\.count))")
            // Each within the stage's time limit (3s) plus the wait for a TLS handshake under load.
            let slowest = results.compactMap { $0.last.flatMap { Double($0) } }.max() ?? 0
            #expect(slowest < 20, "slowest login took \(slowest) s")
            print("100 logins against a slow directory: \(Dictionary(grouping: codes, by: { $0 }).mapValues(\.count)), slowest \(slowest) s")
            let after = try s.send(user: "bob", password: "bob-pw", from: "bob@engineering.example.com")
            #expect(after.contains("<~  250 2.0.0 Ok: queued"), "\(after)")
        }

        @Test func pluginsAreSeparateSharedObjectsInTheRunningServer() async throws {
            let s = try await start()
            defer { s.relay.stop() }
            defer { Task { await s.slapd.stop() } }
            let pid = try #require(s.relay.process?.pid)
            // /proc files report size 0: read them with cat, not a sized read.
            let maps = try ChildProcess.run("cat", ["/proc/\(pid)/maps"], timeout: 10).stdout
            for library in ["libtollgate-ldap.so", "libtollgate-sender-allowlist.so", "libtollgate-rate-limit.so", "libTollgatePolicy.so"] {
                #expect(maps.contains(library), "\(library) not mapped")
            }
            let explain = try s.relay.cli(["explain", "--from", "evil@elsewhere.example", "--to", "x@example.net", "--client", "192.0.2.9"])
            // A refused result exits 1, so a script can test a rule.
            #expect(explain.status == 1)
            #expect(explain.stdout.contains("sender-allowlist"))
            #expect(explain.stdout.contains("result:     refused"))
            // An unknown user is said to be unknown, and nothing runs as if it had logged in.
            let unknown = try s.relay.cli(["explain", "--user", "zed", "--from", "zed@finance.example.com", "--to", "x@example.net"])
            #expect(unknown.status == 1, "\(unknown.stdout)\(unknown.stderr)")
            #expect(unknown.stdout.contains("user zed is unknown"), "\(unknown.stdout)")
            #expect(unknown.stdout.contains("result:     refused"))
            #expect(!unknown.stdout.contains("\nmail "), "the mail phase ran for an unknown user: \(unknown.stdout)")
            let known = try s.relay.cli(["explain", "--user", "alice", "--from", "alice@finance.example.com", "--to", "x@example.net"])
            #expect(known.status == 0, "\(known.stdout)\(known.stderr)")
            #expect(known.stdout.contains("result:     accepted"))
            // One auth line (the lookup's), and every trace line in the README's columns:
            // phase to 10, stage to 29, verdict to 39.
            #expect(!known.stdout.contains("auth      (no stages)"), "\(known.stdout)")
            let auth = known.stdout.split(separator: "\n").filter { $0.hasPrefix("auth ") }
            #expect(auth.count == 1 && auth[0].hasPrefix("auth      ldap               found     user alice"), "\(known.stdout)")
            let mail = try #require(known.stdout.split(separator: "\n").first { $0.hasPrefix("mail ") })
            #expect(mail.hasPrefix("mail      sender-allowlist   continue  "), "\(mail)")
            // The embedded store's counters are the running relay's, not explain's: it says so.
            #expect(known.stdout.contains("counters:   not the running relay's"), "\(known.stdout)")
        }
    }
}
