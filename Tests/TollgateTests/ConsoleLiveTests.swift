import Foundation
import TestSupport
import Testing

/// The web console of a real `tollgate serve`, over plain HTTP: the queue with its
/// filters and paging, a message's envelope, recipients, delivery attempts and decision trace, values
/// from mail escaped; read-only without `console.users` (every action 403); with it,
/// bcrypt sign-in, a session cookie marked Secure/HttpOnly/SameSite, actions that need
/// the session's CSRF token, sign-out; the statistics page; `check` of a bad users file.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(3))) struct ConsoleLiveTests {
        struct Setup {
            let relay: RelayProcess
            let port: Int
            let directory: TemporaryDirectory
        }

        /// A relay whose upstream is down (messages stay deferred), with the console on
        /// a free port, `users` if given, and a rate limit per client of 100 an hour.
        static func start(users: [(String, String)]? = nil) throws -> Setup {
            let dir = try TemporaryDirectory(label: "console")
            // Loopback clients are the department "lab" (by network), with its own limit.
            try FileManager.default.createDirectory(atPath: dir.path + "/policies", withIntermediateDirectories: true)
            try TestFiles.write("department: lab\nmembers:\n  networks: [127.0.0.0/8]\nrate-limit:\n  - { key: department, messages: 50, per: 1h }\n", to: dir.path + "/policies/lab.yaml")
            let port = freePort()
            var usersLine = ""
            if let users {
                var lines: [String] = []
                for (name, password) in users {
                    let made = try ChildProcess.run("htpasswd", ["-nbB", name, password], timeout: 30)
                    #expect(made.status == 0, "htpasswd: \(made.stderr)")
                    lines.append(made.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
                }
                try TestFiles.write(lines.joined(separator: "\n") + "\n", to: dir.path + "/console.htpasswd")
                usersLine = ", users: console.htpasswd"
            }
            let relay = try RelayProcess(
                rest: """
                    upstreams:
                      - name: down
                        hosts: [127.0.0.1:\(freePort())]
                        tls: none
                    delivery:
                      default_upstream: down
                      retry: [1h]
                    stages:
                      - use: rate-limit
                        settings:
                          limits:
                            - { key: client, messages: 100, per: 1h }
                            - { key: sender, messages: 2, per: 1h }
                    policies: policies
                    console: { address: 127.0.0.1:\(port)\(usersLine) }
                    """,
                directory: dir
            )
            try relay.start()
            #expect(waitUntil(timeout: 10) { (try? HTTPTestClient.request(port: port, "/")) != nil }, "\(relay.log.suffix(2000))")
            return Setup(relay: relay, port: port, directory: dir)
        }

        /// Sends a message; returns its queue id.
        static func send(_ setup: Setup, from: String, to: [String] = ["bob@example.net"], helo: String = "client.example") throws -> String {
            let client = try SMTPTestClient.connect(port: setup.relay.port)
            defer { client.close() }
            #expect(try client.readReply().code == 220)
            try client.command("EHLO \(helo)", expect: 250)
            try client.command("MAIL FROM:<\(from)>", expect: 250)
            for r in to { try client.command("RCPT TO:<\(r)>", expect: 250) }
            try client.command("DATA", expect: 354)
            try client.sendRaw(Array("From: \(from)\r\nSubject: console\r\n\r\nBody.\r\n.\r\n".utf8))
            let reply = try client.readReply()
            #expect(reply.code == 250, "\(reply)")
            return reply.text.split(separator: " ").last.map(String.init) ?? ""
        }

        @Test func readOnlyConsoleShowsTheQueueEscapedAndRefusesEveryAction() throws {
            let s = try Self.start()
            defer { s.relay.stop() }
            let plain = try Self.send(s, from: "alice@example.com")
            // A quoted local part may hold markup: it must reach the page as text.
            let hostile = try Self.send(s, from: "\"<script>alert(1)</script>\"@example.com", to: ["carol@example.org"])
            #expect(try s.relay.cli(["queue", "hold", plain]).status == 0)

            let queue = try HTTPTestClient.request(port: s.port, "/")
            #expect(queue.status == 200 && queue.header("content-type")?.hasPrefix("text/html") == true)
            #expect(queue.body.contains(plain) && queue.body.contains(hostile), "\(queue.body)")
            #expect(!queue.body.contains("<script>alert(1)</script>"), "markup from mail reached the page")
            #expect(queue.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(queue.body.contains("read-only: no console.users"))
            #expect(queue.header("content-security-policy")?.contains("default-src 'none'") == true)
            #expect(queue.header("x-content-type-options") == "nosniff" && queue.header("cache-control") == "no-store")
            #expect(queue.body.contains("Messages 1–2 of 2"), "\(queue.body)")

            // Filters and paging.
            let held = try HTTPTestClient.request(port: s.port, "/?state=held")
            #expect(held.body.contains(plain) && !held.body.contains(hostile) && held.body.contains("Messages 1–1 of 1 matching"))
            let byRecipient = try HTTPTestClient.request(port: s.port, "/?recipient=CAROL%40example.org")
            #expect(byRecipient.body.contains(hostile) && !byRecipient.body.contains(">\(plain)<"))
            let first = try HTTPTestClient.request(port: s.port, "/?limit=1")
            #expect(first.body.contains("Messages 1–1 of 2") && first.body.contains("rel=\"next\" href=\"/?offset=1&limit=1\""), "\(first.body)")
            let second = try HTTPTestClient.request(port: s.port, "/?offset=1&limit=1")
            #expect(second.body.contains("Messages 2–2 of 2") && second.body.contains("rel=\"prev\""))
            let byUpstream = try HTTPTestClient.request(port: s.port, "/?upstream=elsewhere")
            #expect(byUpstream.body.contains("No queued message matches."))
            // Without a route of their own, messages go to (and are listed under) the default upstream.
            let byDefault = try HTTPTestClient.request(port: s.port, "/?upstream=down")
            #expect(byDefault.body.contains("Messages 1–2 of 2 matching") && byDefault.body.contains("<td>down (default)</td>"), "\(byDefault.body)")
            let listed = try s.relay.cli(["queue", "list", "--upstream", "down", "--json"]).stdout.split(separator: "\n")
            #expect(listed.count == 2 && listed.allSatisfy { $0.contains("\"upstream\":\"down\"") }, "\(listed)")
            let lab = try HTTPTestClient.request(port: s.port, "/?department=LAB")
            #expect(lab.body.contains("Messages 1–2 of 2 matching") && lab.body.contains("<td>lab</td>"), "\(lab.body)")
            #expect(try HTTPTestClient.request(port: s.port, "/?department=finance").body.contains("No queued message matches."))
            let none = try HTTPTestClient.request(port: s.port, "/?sender=nobody%40example.com")
            #expect(none.body.contains("No queued message matches."))

            // One message: envelope, recipients, the rate-limit stage's trace.
            let page = try HTTPTestClient.request(port: s.port, "/message/\(plain)")
            #expect(page.status == 200 && page.body.contains("id=\"message-id\">\(plain)<"))
            #expect(page.body.contains("&lt;alice@example.com&gt;") && page.body.contains("&lt;bob@example.net&gt;"))
            #expect(page.body.contains("rate-limit") && page.body.contains("within limits"), "\(page.body)")
            #expect(page.body.contains("held"))
            #expect(!page.body.contains("<form method=\"post\" action=\"/message/"), "no actions on a read-only console")
            #expect(try HTTPTestClient.request(port: s.port, "/message/NOSUCHID").status == 404)

            // Every action, and sign-in, is refused.
            for action in ["hold", "release", "retry", "bounce", "delete"] {
                let refused = try HTTPTestClient.post(port: s.port, "/message/\(plain)/\(action)", form: [("csrf", "x")])
                #expect(refused.status == 403, "\(action): \(refused.status)")
            }
            #expect(try HTTPTestClient.post(port: s.port, "/signin", form: [("username", "a"), ("password", "b"), ("csrf", "c")]).status == 403)
            #expect(try HTTPTestClient.request(port: s.port, "/signin").status == 403)
            let list = try s.relay.cli(["queue", "list"]).stdout
            #expect(list.contains(plain) && list.contains(hostile) && list.contains("held"), "nothing changed: \(list)")
            // A name the console was not told of (DNS rebinding): 421, no queue.
            let rebound = try HTTPTestClient.request(port: s.port, "/", host: "attacker.example:\(s.port)")
            #expect(rebound.status == 421 && !rebound.body.contains(plain))
            #expect(try HTTPTestClient.request(port: s.port, "/", host: "localhost:\(s.port)").status == 200)
        }

        @Test func signedInAdministratorsActWithTheSessionsCSRFTokenOnly() throws {
            let s = try Self.start(users: [("admin", "correct horse"), ("other", "battery staple")])
            defer { s.relay.stop() }
            let id = try Self.send(s, from: "alice@example.com")
            let check = try s.relay.cli(["check"])
            #expect(check.stdout.contains("console: http://127.0.0.1:\(s.port)/ administrators admin, other"), "\(check.stdout)")

            // Not signed in: the page offers sign-in, actions are refused.
            let anonymous = try HTTPTestClient.request(port: s.port, "/message/\(id)")
            #expect(anonymous.body.contains("href=\"/signin\">Sign in</a> to hold"))
            #expect(try HTTPTestClient.post(port: s.port, "/message/\(id)/hold", form: [("csrf", "x")]).status == 403)

            // The sign-in form's token must match its cookie (login CSRF).
            let form = try HTTPTestClient.request(port: s.port, "/signin")
            let signInToken = try #require(form.cookies["tollgate_signin"])
            #expect(form.body.contains("name=\"csrf\" value=\"\(signInToken)\""))
            let forged = try HTTPTestClient.post(port: s.port, "/signin", form: [("username", "admin"), ("password", "correct horse"), ("csrf", "forged")], cookies: ["tollgate_signin": signInToken])
            #expect(forged.status == 403 && forged.cookies["tollgate_session"] == nil)
            let wrong = try HTTPTestClient.post(port: s.port, "/signin", form: [("username", "admin"), ("password", "wrong"), ("csrf", signInToken)], cookies: ["tollgate_signin": signInToken])
            #expect(wrong.status == 401 && wrong.body.contains("Wrong user name or password") && wrong.cookies["tollgate_session"] == nil)
            let unknown = try HTTPTestClient.post(port: s.port, "/signin", form: [("username", "nobody"), ("password", "correct horse"), ("csrf", signInToken)], cookies: ["tollgate_signin": signInToken])
            #expect(unknown.status == 401)
            // Guessing is throttled per name and address: five failures, then 429 even for the right password.
            for _ in 0..<4 {
                #expect(try HTTPTestClient.post(port: s.port, "/signin", form: [("username", "other"), ("password", "guess"), ("csrf", signInToken)], cookies: ["tollgate_signin": signInToken]).status == 401)
            }
            #expect(try HTTPTestClient.post(port: s.port, "/signin", form: [("username", "other"), ("password", "guess"), ("csrf", signInToken)], cookies: ["tollgate_signin": signInToken]).status == 401)
            let locked = try HTTPTestClient.post(port: s.port, "/signin", form: [("username", "other"), ("password", "battery staple"), ("csrf", signInToken)], cookies: ["tollgate_signin": signInToken])
            #expect(locked.status == 429 && locked.cookies["tollgate_session"] == nil)
            let good = try HTTPTestClient.post(port: s.port, "/signin", form: [("username", "admin"), ("password", "correct horse"), ("csrf", signInToken)], cookies: ["tollgate_signin": signInToken])
            #expect(good.status == 303 && good.header("location") == "/")
            let session = try #require(good.cookies["tollgate_session"])
            let attributes = try #require(good.setCookie("tollgate_session"))
            for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] { #expect(attributes.contains(attribute), "\(attributes)") }
            #expect(session.count == 64)

            // Signed in: the page has the forms with this session's token.
            let page = try HTTPTestClient.request(port: s.port, "/message/\(id)", cookies: ["tollgate_session": session])
            #expect(page.body.contains("signed in as <b>admin</b>"))
            let csrf = try #require(page.body.range(of: "name=\"csrf\" value=\"").map { String(page.body[$0.upperBound...].prefix(64)) })
            #expect(page.body.contains("action=\"/message/\(id)/hold\""))

            // An action without the token, or with another, changes nothing.
            #expect(try HTTPTestClient.post(port: s.port, "/message/\(id)/hold", form: [("csrf", "")], cookies: ["tollgate_session": session]).status == 403)
            #expect(try HTTPTestClient.post(port: s.port, "/message/\(id)/hold", form: [("csrf", signInToken)], cookies: ["tollgate_session": session]).status == 403)
            #expect(try HTTPTestClient.post(port: s.port, "/message/\(id)/hold", form: [("csrf", csrf)]).status == 403, "the token alone, without the session")
            #expect(!(try s.relay.cli(["queue", "list", "--state", "held"]).stdout.contains(id)))

            // With it: hold, then release, then delete.
            let hold = try HTTPTestClient.post(port: s.port, "/message/\(id)/hold", form: [("csrf", csrf)], cookies: ["tollgate_session": session])
            #expect(hold.status == 303 && hold.header("location") == "/message/\(id)")
            #expect(try s.relay.cli(["queue", "list", "--state", "held"]).stdout.contains(id))
            #expect(s.relay.log.contains("console action") && s.relay.log.contains("console.action=hold"), "\(s.relay.log.suffix(2000))")
            let heldPage = try HTTPTestClient.request(port: s.port, "/message/\(id)", cookies: ["tollgate_session": session])
            #expect(heldPage.body.contains("action=\"/message/\(id)/release\"") && !heldPage.body.contains("action=\"/message/\(id)/hold\""))
            #expect(try HTTPTestClient.post(port: s.port, "/message/\(id)/release", form: [("csrf", csrf)], cookies: ["tollgate_session": session]).status == 303)
            #expect(try s.relay.cli(["queue", "list", "--state", "queued"]).stdout.contains(id))
            #expect(try HTTPTestClient.post(port: s.port, "/message/\(id)/frobnicate", form: [("csrf", csrf)], cookies: ["tollgate_session": session]).status == 404)
            // Retry: due now, so the queue runner tries it again (the upstream is down).
            #expect(try HTTPTestClient.post(port: s.port, "/message/\(id)/retry", form: [("csrf", csrf)], cookies: ["tollgate_session": session]).status == 303)
            #expect(waitUntil(timeout: 15) { (try? s.relay.cli(["queue", "show", id]).stdout.contains("attempts 2")) == true }, "\((try? s.relay.cli(["queue", "show", id]).stdout) ?? "")")
            // Both attempts are recorded: the upstream, no host (none answered), the reason.
            let refused = "451 4.4.1 cannot connect to upstream: connection refused by 127.0.0.1:"
            let shown = try s.relay.cli(["queue", "show", id]).stdout
            #expect(shown.contains("\nattempts:\n  #1 ") && shown.contains("\n  #2 ") && shown.contains("Z upstream down, host -, by "), "\(shown)")
            #expect(shown.components(separatedBy: "    <bob@example.net> deferred: \(refused)").count == 3, "\(shown)")
            let tried = try HTTPTestClient.request(port: s.port, "/message/\(id)", cookies: ["tollgate_session": session]).body
            #expect(tried.contains("<table id=\"attempts\">") && tried.contains("<td rowspan=\"1\" class=\"n\">2</td>"), "\(tried)")
            #expect(tried.components(separatedBy: "<td>&lt;bob@example.net&gt;</td><td>deferred</td><td>\(refused)").count == 3, "\(tried)")
            // Bounce: returned to its sender now; it leaves the queue, a DSN to frank is queued.
            let bounced = try Self.send(s, from: "frank@example.com", to: ["erin@example.net"])
            #expect(try HTTPTestClient.post(port: s.port, "/message/\(bounced)/bounce", form: [("csrf", csrf)], cookies: ["tollgate_session": session]).status == 303)
            #expect(waitUntil(timeout: 15) { (try? s.relay.cli(["queue", "show", bounced]).stdout.contains("bounced at")) == true }, "\((try? s.relay.cli(["queue", "show", bounced]).stdout) ?? "")")
            // From the history: its refused attempt, then the administrator's bounce (no upstream tried).
            let finished = try HTTPTestClient.request(port: s.port, "/message/\(bounced)").body
            #expect(finished.contains("<td>&lt;erin@example.net&gt;</td><td>deferred</td><td>\(refused)"), "\(finished)")
            #expect(finished.contains("<td>&lt;erin@example.net&gt;</td><td>failed</td><td>554 5.0.0 bounced by the administrator</td>"), "\(finished)")
            #expect(try s.relay.cli(["queue", "list", "--recipient", "frank@example.com"]).stdout.contains("<>"), "the DSN, from the null sender")
            #expect(try HTTPTestClient.post(port: s.port, "/message/\(id)/delete", form: [("csrf", csrf)], cookies: ["tollgate_session": session]).status == 303)
            #expect(!(try s.relay.cli(["queue", "list"]).stdout.contains(id)))
            #expect(try HTTPTestClient.request(port: s.port, "/message/\(id)").status == 404, "a deleted message is not shown, nor its attempts")

            // Sign-out ends the session: its token no longer acts.
            let other = try Self.send(s, from: "alice@example.com")
            #expect(try HTTPTestClient.post(port: s.port, "/signout", form: [("csrf", csrf)], cookies: ["tollgate_session": session]).status == 303)
            #expect(try HTTPTestClient.post(port: s.port, "/message/\(other)/hold", form: [("csrf", csrf)], cookies: ["tollgate_session": session]).status == 403)
            #expect(!(try s.relay.cli(["queue", "list", "--state", "held"]).stdout.contains(other)))
        }

        @Test func statisticsShowRefusalsBusiestSendersAndLimits() throws {
            let s = try Self.start()
            defer { s.relay.stop() }
            _ = try Self.send(s, from: "busy@example.com")
            _ = try Self.send(s, from: "busy@example.com")
            // The third from the same sender passes the limit of 2 an hour: 451 at MAIL.
            let client = try SMTPTestClient.connect(port: s.relay.port)
            defer { client.close() }
            #expect(try client.readReply().code == 220)
            try client.command("EHLO client.example", expect: 250)
            let refused = try client.command("MAIL FROM:<busy@example.com>")
            #expect(refused.code == 451, "\(refused)")
            let stats = try HTTPTestClient.request(port: s.port, "/stats")
            #expect(stats.status == 200)
            #expect(stats.body.contains("<td>busy@example.com</td><td class=\"n\">2</td>"), "\(stats.body)")
            #expect(stats.body.contains("<td>rate-limit</td><td class=\"n\">1</td>"), "\(stats.body)")
            #expect(stats.body.contains("Rate limit exceeded"), "the refusal's reply")
            // The dry run for the busiest sender: at its limit, one more is refused.
            #expect(stats.body.contains("sender busy@example.com: 2 used, 1 more would exceed 2 messages per 1h"), "\(stats.body)")
            #expect(stats.body.contains("<td>lab</td><td class=\"n\">2</td>"), "accepted by department: \(stats.body)")
            #expect(stats.body.contains("department lab 2+1 of 50 messages per 1h"), "the department's own limit: \(stats.body)")
            // The counters themselves, fullest first: the sender's full, the department's
            // and the client's; the refused third message counted nowhere.
            #expect(stats.body.contains("3 counters hold something, fullest first"), "\(stats.body)")
            let row = { (key: String, who: String, used: Int, limit: Int, full: String) in
                "<tr><td>\(key)</td><td>\(who)</td><td>messages</td><td>1h</td><td class=\"n\">\(used)</td><td class=\"n\">\(limit)</td><td class=\"n\">\(full)</td></tr>"
            }
            let rows = [row("sender", "busy@example.com", 2, 2, "100%"), row("department", "lab", 2, 50, "4%"), row("client", "127.0.0.1", 2, 100, "2%")]
            #expect(rows.allSatisfy { stats.body.contains($0) }, "\(stats.body)")
            #expect(rows.compactMap { stats.body.range(of: $0)?.lowerBound } == rows.compactMap { stats.body.range(of: $0)?.lowerBound }.sorted(), "fullest first")
            let departments = try HTTPTestClient.request(port: s.port, "/stats?key=department").body
            #expect(departments.contains(rows[1]) && !departments.contains(rows[0]) && departments.contains("1 counter holds something"), "\(departments)")
            #expect(try HTTPTestClient.request(port: s.port, "/stats?key=user").body.contains("No rate-limit counter holds anything for key user."))
            // A key the limits do not have is refused with the ones they do, escaped.
            let bogus = try HTTPTestClient.request(port: s.port, "/stats?key=%3Cb%3Ebogus")
            #expect(bogus.status == 400 && bogus.body.contains("No counter key &lt;b&gt;bogus: the keys are user, department, sender, client."), "\(bogus.status) \(bogus.body)")
            #expect(try HTTPTestClient.request(port: s.port, "/stats?key=").body.contains("3 counters hold something, fullest first"))
            // The delivery attempts to the upstream that is down.
            #expect(waitUntil(timeout: 15) { (try? HTTPTestClient.request(port: s.port, "/stats").body.contains("<td>down</td>")) == true })
        }

        /// Headless Chromium as an administrator would use the console: the queue and a
        /// held message render; a forged release without sign-in is refused and changes
        /// nothing; signed in through the form, the release button releases it. With
        /// `CONSOLE_SCREENSHOTS=DIR` the pages are kept as PNGs (the README's come from here).
        @Test func aBrowserSignsInAndReleasesAHeldMessage() throws {
            try #require(HeadlessBrowser.isAvailable, "chromium or python3-websocket is not installed (scripts/install-deps.sh test)")
            let s = try Self.start(users: [("admin", "correct horse")])
            defer { s.relay.stop() }
            let queued = try Self.send(s, from: "alice@example.com")
            let held = try Self.send(s, from: "bob@example.com", to: ["carol@example.org", "dave@example.org"])
            #expect(try s.relay.cli(["queue", "hold", held]).status == 0)
            let shots = ProcessInfo.processInfo.environment["CONSOLE_SCREENSHOTS"] ?? s.directory.path
            let base = "http://127.0.0.1:\(s.port)"
            let text = "document.querySelector('main').innerText"
            let results = try HeadlessBrowser.run([
                .go(base + "/"),
                .eval("Array.from(document.querySelectorAll('#queue tbody tr')).map(r => r.cells[0].innerText + ' ' + r.cells[8].innerText)"),
                .screenshot(shots + "/console-queue.png"),
                .go(base + "/message/\(held)"),
                .eval(text),
                .eval("document.querySelectorAll('form[action$=\"/release\"]').length"),
                // A release forged by another page, without a session: refused.
                .submit("const f = document.createElement('form'); f.method = 'post'; f.action = '/message/\(held)/release'; const i = document.createElement('input'); i.name = 'csrf'; i.value = 'forged'; f.appendChild(i); document.body.appendChild(f); f.submit()"),
                .eval(text),
                // Still held (steps 8, 9).
                .go(base + "/?state=held"),
                .eval("Array.from(document.querySelectorAll('#queue tbody tr')).map(r => r.cells[0].innerText)"),
                .go(base + "/signin"),
                .submit("document.querySelector('input[name=username]').value = 'admin'; document.querySelector('input[name=password]').value = 'correct horse'; document.querySelector('#signin').click()"),
                .eval("document.querySelector('header').innerText"),
                .go(base + "/message/\(held)"),
                .screenshot(shots + "/console-message.png"),
                .submit("document.querySelector('#release').click()"),
                .eval(text),
                .go(base + "/stats"),
                .screenshot(shots + "/console-statistics.png"),
            ])
            try #require(results.count == 19, "\(results)")
            let rows = results[1] as? [String] ?? []
            #expect(rows.contains("\(queued) deferred") || rows.contains("\(queued) queued"), "\(rows)")
            #expect(rows.contains("\(held) held"), "\(rows)")
            let heldPage = results[4] as? String ?? ""
            #expect(heldPage.contains("held") && heldPage.contains("<carol@example.org>") && heldPage.contains("rate-limit"), "\(heldPage)")
            #expect(results[5] as? Int == 0, "no release button before sign-in")
            #expect((results[7] as? String ?? "").contains("read-only") == false && (results[7] as? String ?? "").contains("Sign in to act"), "\(results[7])")
            #expect(results[9] as? [String] == [held], "the forged release changed nothing: \(results[9])")
            #expect((results[12] as? String ?? "").contains("signed in as admin"), "\(results[12])")
            #expect((results[15] as? String ?? "").contains(held) && (results[16] as? String ?? "").contains("queued, attempts"), "\(results[16])")
            #expect(try s.relay.cli(["queue", "list", "--state", "queued"]).stdout.contains(held) || s.relay.log.contains("console.action=release"))
            #expect(s.relay.log.contains("console.action=release") && s.relay.log.contains("console.user=admin"))
            for name in ["console-queue.png", "console-message.png", "console-statistics.png"] {
                let size = (try? FileManager.default.attributesOfItem(atPath: shots + "/" + name)[.size] as? Int) ?? 0
                #expect(size > 10_000, "\(name): \(size) bytes")
            }
        }

        @Test func aBadUsersFileIsALocatedCheckError() throws {
            let dir = try TemporaryDirectory(label: "consolecheck")
            try TestFiles.write("admin:$2y$05$abcdefghijklmnopqrstuv\n# a comment\n\nbob\nadmin:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", to: dir.path + "/console.htpasswd")
            let relay = try RelayProcess(
                rest: """
                    upstreams:
                      - name: out
                        directory: out
                    console: { address: 127.0.0.1:1, users: console.htpasswd }
                    """,
                directory: dir
            )
            let check = try relay.cli(["check"])
            let output = check.stdout + check.stderr
            #expect(check.status != 0)
            let file = dir.path + "/console.htpasswd"
            #expect(output.contains("\(file):1:1: the hash for admin is not bcrypt"), "\(output)")
            #expect(output.contains("\(file):4:1: expected name:hash"), "\(output)")
            #expect(output.contains("\(file):5:1: the hash for admin is not bcrypt"), "\(output)")
            // serve refuses to start with it, saying why.
            let serve = try relay.cli(["serve"])
            #expect(serve.status != 0 && (serve.stdout + serve.stderr).contains("console.users"), "\(serve.stdout + serve.stderr)")
        }
    }
}
