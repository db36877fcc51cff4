import Foundation
import Hummingbird
import TollgateSpool

/// The console's pages, as HTML. Every value from mail, a client, a stage or the
/// configuration goes through ``e(_:)``; nothing else is interpolated.
enum ConsolePages {
    static func e(_ text: String) -> String { HTML.escape(text) }

    static func response(_ status: HTTPResponse.Status, _ html: String) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static let style = """
        body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
        header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}
        header a{color:#fff;text-decoration:none}header .who{margin-left:auto;opacity:.9}
        header form{display:inline}header button{background:none;border:1px solid #fff6;color:#fff;border-radius:3px;cursor:pointer}
        main{padding:1em 1.2em}h1{font-size:1.3em;margin:.2em 0 .6em}h2{font-size:1.1em;margin:1.2em 0 .4em}
        table{border-collapse:collapse;background:#fff;width:100%}th,td{padding:.3em .5em;border-bottom:1px solid #e3e6eb;text-align:left;vertical-align:top}
        th{background:#eef0f4;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
        .state-held{color:#8a5a00;font-weight:600}.state-deferred{color:#a12}.state-queued{color:#176}
        form.filters{display:flex;flex-wrap:wrap;gap:.5em;margin-bottom:.8em}form.filters input,form.filters select{padding:.2em}
        .actions form{display:inline}.actions button{margin-right:.4em}.note{color:#555}.problem{color:#a12;font-weight:600}
        dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;background:#fff;padding:.6em}dt{font-weight:600}
        nav.pages{margin:.6em 0}code{font-size:.95em}
        """

    static func layout(_ title: String, _ body: String, viewer: ConsoleServer.Viewer) -> String {
        let who: String
        if viewer.readOnly {
            who = "<span class=\"who\">read-only: no console.users</span>"
        } else if let user = viewer.user, let csrf = viewer.csrf {
            who = "<span class=\"who\">signed in as <b>\(e(user))</b> <form method=\"post\" action=\"/signout\"><input type=\"hidden\" name=\"csrf\" value=\"\(e(csrf))\"><button>sign out</button></form></span>"
        } else {
            who = "<span class=\"who\"><a href=\"/signin\">sign in</a></span>"
        }
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
            <title>\(e(title)) · Tollgate</title><style>\(style)</style></head>
            <body><header><b>Tollgate</b><a href="/">Queue</a><a href="/stats">Statistics</a>\(who)</header>
            <main>\(body)</main></body></html>
            """
    }

    static func problem(_ text: String, viewer: ConsoleServer.Viewer) -> String {
        layout("Problem", "<p class=\"problem\">\(e(text))</p><p><a href=\"/\">Back to the queue</a></p>", viewer: viewer)
    }

    static func readOnlyRefusal(viewer: ConsoleServer.Viewer) -> String {
        layout("Read-only", "<p class=\"problem\">This console is read-only: no administrators are configured (console.users), so every action is refused.</p>", viewer: viewer)
    }

    static func date(_ t: Double) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: t))
    }

    static func age(_ seconds: Double) -> String { QueueAge.text(seconds) }

    // MARK: - The queue

    static func queue(page: QueueListPage, filter: ConsoleFilter, offset: Int, limit: Int, now: Double, viewer: ConsoleServer.Viewer) -> String {
        var html = "<h1>Queue</h1>"
        html += "<form class=\"filters\" method=\"get\" action=\"/\"><select name=\"state\"><option value=\"\">any state</option>"
        for state in QueueState.allCases {
            html += "<option value=\"\(state.rawValue)\"\(filter.state == state ? " selected" : "")>\(state.rawValue)</option>"
        }
        html += "</select>"
        for (key, value) in [("user", filter.user), ("department", filter.department), ("sender", filter.sender), ("recipient", filter.recipient), ("upstream", filter.upstream)] {
            html += "<input name=\"\(key)\" placeholder=\"\(key)\" value=\"\(e(value ?? ""))\">"
        }
        html += "<button>Filter</button>\(filter.isEmpty ? "" : " <a href=\"/\">clear</a>")</form>"
        let first = page.rows.isEmpty ? 0 : offset + 1
        html += "<p class=\"note\" id=\"count\">\(page.total == 0 ? (filter.isEmpty ? "The queue is empty." : "No queued message matches.") : "Messages \(first)–\(offset + page.rows.count) of \(page.total)\(filter.isEmpty ? "" : " matching").")</p>"
        if !page.rows.isEmpty {
            html += "<table id=\"queue\"><thead><tr><th>id</th><th>age</th><th>size</th><th>sender</th><th>pending recipients</th><th>user</th><th>department</th><th>upstream</th><th>state</th><th>attempts</th><th>last error</th></tr></thead><tbody>"
            for m in page.rows {
                html += "<tr><td><a href=\"/message/\(HTML.query(m.id))\">\(e(m.id))</a></td><td>\(age(now - m.createdAt))</td><td class=\"n\">\(m.size)</td>"
                html += "<td>&lt;\(e(m.sender))&gt;</td><td>\(m.recipients.map { "&lt;\(e($0))&gt;" }.joined(separator: "<br>"))</td>"
                html += "<td>\(e(m.user ?? "-"))</td><td>\(e(m.department ?? "-"))</td><td>\(e(m.upstream ?? filter.defaultUpstream.map { "\($0) (default)" } ?? "default"))</td><td class=\"state-\(m.state.rawValue)\">\(m.state.rawValue)</td>"
                html += "<td class=\"n\">\(m.attempts)</td><td>\(e(m.lastError ?? ""))</td></tr>"
            }
            html += "</tbody></table>"
        }
        var links: [String] = []
        let base = filter.query.isEmpty ? "" : filter.query + "&"
        if offset > 0 { links.append("<a rel=\"prev\" href=\"/?\(base)offset=\(max(0, offset - limit))&limit=\(limit)\">← newer page</a>") }
        if offset + page.rows.count < page.total { links.append("<a rel=\"next\" href=\"/?\(base)offset=\(offset + limit)&limit=\(limit)\">next page →</a>") }
        if !links.isEmpty { html += "<nav class=\"pages\">\(links.joined(separator: " · "))</nav>" }
        return layout("Queue", html, viewer: viewer)
    }

    // MARK: - One message

    static func message(_ m: SpoolMessage, attempts: [DeliveryAttempt], viewer: ConsoleServer.Viewer) -> String {
        var facts: [(String, String)] = [("state", "\(m.state.rawValue), attempts \(m.attempts), next attempt \(date(m.nextAttempt))")]
        if let owner = m.claimedBy { facts.append(("claimed by", "\(owner) (delivering, or its lease has run out)")) }
        if let error = m.lastError { facts.append(("last error", error)) }
        var html = details(
            id: m.id, createdAt: m.createdAt, sender: m.sender, size: m.size, envelope: m.envelope, upstream: m.upstream, acceptedBy: m.acceptedBy,
            facts: facts, recipients: m.recipients, attempts: attempts
        )
        html += actions(m, viewer: viewer)
        return layout("Message \(m.id)", html, viewer: viewer)
    }

    static func history(_ h: HistoryEntry, attempts: [DeliveryAttempt], viewer: ConsoleServer.Viewer) -> String {
        let html = details(
            id: h.id, createdAt: h.createdAt, sender: h.sender, size: h.size, envelope: h.envelope, upstream: h.upstream, acceptedBy: h.acceptedBy,
            facts: [("state", "\(h.result) at \(date(h.completedAt)), attempts \(h.attempts) — no longer queued; the content is not kept")],
            recipients: h.recipients, attempts: attempts
        )
        return layout("Message \(h.id)", html, viewer: viewer)
    }

    static func details(
        id: String, createdAt: Double, sender: String, size: Int, envelope: SpoolEnvelope, upstream: String?, acceptedBy: String,
        facts: [(String, String)], recipients: [SpoolRecipient], attempts: [DeliveryAttempt]
    ) -> String {
        var rows: [(String, String)] = [
            ("received", "\(date(createdAt)) from \(envelope.clientAddress) (\(envelope.helo ?? "-")) on \(envelope.listener)\(envelope.tls ? " with TLS" : "")"),
            ("sender", "<\(sender)>"), ("size", "\(size)"),
        ]
        rows += facts
        if let user = envelope.user { rows.append(("user", user)) }
        if let department = envelope.department { rows.append(("department", department)) }
        if let upstream { rows.append(("upstream", upstream)) }
        if !acceptedBy.isEmpty { rows.append(("accepted by", acceptedBy)) }
        var html = "<h1>Message <code id=\"message-id\">\(e(id))</code></h1><dl id=\"envelope\">"
        for (name, value) in rows { html += "<dt>\(e(name))</dt><dd>\(e(value))</dd>" }
        html += "</dl><h2>Recipients</h2><table id=\"recipients\"><thead><tr><th>recipient</th><th>state</th><th>attempts</th><th>last reply</th></tr></thead><tbody>"
        for r in recipients {
            html += "<tr><td>&lt;\(e(r.address))&gt;</td><td>\(e(r.state.rawValue))</td><td class=\"n\">\(r.attempts)</td><td>\(e(r.lastReply ?? ""))</td></tr>"
        }
        html += "</tbody></table>"
        html += self.attempts(attempts)
        html += "<h2>Decision trace</h2>"
        if envelope.trace.isEmpty {
            html += "<p class=\"note\">No policy stage decided this message.</p>"
        } else {
            html += "<table id=\"trace\"><thead><tr><th>phase</th><th>stage</th><th>verdict</th><th>reason</th><th>ms</th></tr></thead><tbody>"
            for t in envelope.trace {
                html += "<tr><td>\(e(t.phase))</td><td>\(e(t.stage))</td><td>\(e(t.verdict))\(t.shadow == true ? " (shadow)" : "")</td><td>\(e(t.reason))</td><td class=\"n\">\(String(format: "%.2f", t.milliseconds))</td></tr>"
            }
            html += "</tbody></table>"
        }
        return html
    }

    /// The buttons a signed-in administrator gets: each a POST form with the CSRF token.
    static func actions(_ m: SpoolMessage, viewer: ConsoleServer.Viewer) -> String {
        guard let csrf = viewer.csrf else {
            return viewer.readOnly ? "" : "<p class=\"note\"><a href=\"/signin\">Sign in</a> to hold, release, retry, bounce or delete this message.</p>"
        }
        var choices = m.state == .held ? ["release"] : ["hold", "retry"]
        choices += ["bounce", "delete"]
        var html = "<h2>Actions</h2><div class=\"actions\">"
        for action in choices {
            html += "<form method=\"post\" action=\"/message/\(HTML.query(m.id))/\(action)\"><input type=\"hidden\" name=\"csrf\" value=\"\(e(csrf))\"><button id=\"\(action)\">\(action)</button></form>"
        }
        return html + "</div>"
    }

    // MARK: - Signing in

    static func signIn(token: String, failed: Bool, viewer: ConsoleServer.Viewer) -> String {
        var html = "<h1>Sign in</h1>"
        if failed { html += "<p class=\"problem\">Wrong user name or password.</p>" }
        html += """
            <form method="post" action="/signin"><input type="hidden" name="csrf" value="\(e(token))">
            <p><label>User <input name="username" autocomplete="username" required></label></p>
            <p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
            <p><button id="signin">Sign in</button></p></form>
            """
        return layout("Sign in", html, viewer: viewer)
    }

    // MARK: - Statistics

    static func statistics(_ s: ConsoleStatisticsSnapshot, viewer: ConsoleServer.Viewer) -> String {
        let minutes = Int(s.window / 60)
        var html = "<h1>Statistics</h1><p class=\"note\">The last \(minutes) minutes, from the relay's accepted, refused and delivery events (counted since \(e(date(s.countingSince)))).</p>"
        func counts(_ title: String, _ id: String, _ rows: [ConsoleStatisticsSnapshot.Count], _ what: String) -> String {
            var out = "<h2>\(e(title))</h2>"
            guard !rows.isEmpty else { return out + "<p class=\"note\">None.</p>" }
            out += "<table id=\"\(id)\"><thead><tr><th>\(e(what))</th><th>count</th></tr></thead><tbody>"
            for r in rows { out += "<tr><td>\(e(r.name))</td><td class=\"n\">\(r.count)</td></tr>" }
            return out + "</tbody></table>"
        }
        html += "<h2>Rate-limit counters against their limits</h2>"
        html += "<p class=\"note\">Show: " + ([nil] + ConsoleStatisticsSnapshot.counterKeys.map { Optional($0) }).map { key -> String in
            let label = key ?? "all"
            return key == s.counterKey ? "<strong>\(e(label))</strong>" : "<a href=\"/stats\(key.map { "?key=" + $0 } ?? "")\">\(e(label))</a>"
        }.joined(separator: " · ") + "</p>"
        if let problem = s.countersProblem {
            html += "<p class=\"problem\">\(e(problem))</p>"
        } else if s.counters.isEmpty {
            html += "<p class=\"note\">No rate-limit counter holds anything\(s.counterKey.map { " for key " + e($0) } ?? "").</p>"
        } else {
            let shown = s.countersTotal > s.counters.count ? ", the fullest \(s.counters.count) shown" : ""
            html += "<p class=\"note\">\(s.countersTotal) counter\(s.countersTotal == 1 ? " holds" : "s hold") something\(shown), fullest first: accepted mail within the window and transactions in progress, shared by every node with the PostgreSQL store.</p>"
            html += "<table id=\"counters\"><thead><tr><th>key</th><th>who</th><th>measure</th><th>window</th><th>used</th><th>limit</th><th>full</th></tr></thead><tbody>"
            for c in s.counters {
                let full = c.limit > 0 ? "\(Int((Double(c.used) * 100 / Double(c.limit)).rounded()))%" : "-"
                html += "<tr><td>\(e(c.key))</td><td>\(e(c.value))</td><td>\(e(c.measure))</td><td>\(e(duration(c.window)))</td><td class=\"n\">\(c.used)</td><td class=\"n\">\(c.limit)</td><td class=\"n\">\(full)</td></tr>"
            }
            html += "</tbody></table>"
        }
        html += "<h2>The busiest, asked again</h2>"
        if s.limits.isEmpty {
            html += "<p class=\"note\">No user or department sent mail in this window, or no rate limit applies.</p>"
        } else {
            html += "<table id=\"limits\"><thead><tr><th>who</th><th>the rate-limit stage, asked for one more message</th></tr></thead><tbody>"
            for l in s.limits { html += "<tr><td>\(e(l.subject))</td><td>\(e(l.text))</td></tr>" }
            html += "</tbody></table>"
        }
        html += counts("Accepted by user", "by-user", s.acceptedByUser, "user")
        html += counts("Accepted by department", "by-department", s.acceptedByDepartment, "department")
        html += counts("Busiest senders", "senders", s.acceptedBySender, "envelope sender")
        html += counts("Refusals by stage", "refusals-by-stage", s.refusalsByStage, "stage")
        html += "<h2>Recent refusals</h2>"
        if s.recentRefusals.isEmpty {
            html += "<p class=\"note\">None.</p>"
        } else {
            html += "<table id=\"refusals\"><thead><tr><th>when</th><th>stage</th><th>phase</th><th>client</th><th>user</th><th>sender</th><th>recipient</th><th>reply</th></tr></thead><tbody>"
            for r in s.recentRefusals {
                html += "<tr><td>\(e(date(r.at)))</td><td>\(e(r.stage))</td><td>\(e(r.phase))</td><td>\(e(r.client))</td><td>\(e(r.user))</td><td>\(e(r.sender))</td><td>\(e(r.recipient))</td><td>\(e(r.reply))</td></tr>"
            }
            html += "</tbody></table>"
        }
        html += "<h2>Delivery results by upstream (recipients)</h2>"
        if s.upstreams.isEmpty {
            html += "<p class=\"note\">None.</p>"
        } else {
            html += "<table id=\"upstreams\"><thead><tr><th>upstream</th><th>sent</th><th>deferred</th><th>bounced</th></tr></thead><tbody>"
            for u in s.upstreams { html += "<tr><td>\(e(u.name))</td><td class=\"n\">\(u.sent)</td><td class=\"n\">\(u.deferred)</td><td class=\"n\">\(u.bounced)</td></tr>" }
            html += "</tbody></table>"
        }
        return layout("Statistics", html, viewer: viewer)
    }

    /// A window length as the policy files write it: `1h`, `30m`, `1d`, `90s`.
    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        for (unit, length) in [("d", 86_400), ("h", 3_600), ("m", 60)] where s >= length && s % length == 0 { return "\(s / length)\(unit)" }
        return "\(s)s"
    }
}
