import TollgateSpool

extension ConsolePages {
    /// A message's recorded delivery attempts, oldest first: one row per recipient
    /// tried, the attempt's number, time, upstream, host and claimer spanning its
    /// rows. Every text is escaped: the replies come from remote servers.
    static func attempts(_ attempts: [DeliveryAttempt]) -> String {
        var html = "<h2>Delivery attempts</h2>"
        guard !attempts.isEmpty else { return html + "<p class=\"note\">No delivery attempt recorded yet.</p>" }
        if let first = attempts.first, first.number > 1 {
            html += "<p class=\"note\">Attempts before #\(first.number) are not kept.</p>"
        }
        html += "<table id=\"attempts\"><thead><tr><th>#</th><th>time</th><th>upstream</th><th>host</th><th>by</th><th>recipient</th><th>result</th><th>reply</th></tr></thead><tbody>"
        for a in attempts {
            let span = max(a.recipients.count, 1)
            let head = "<td rowspan=\"\(span)\" class=\"n\">\(a.number)</td><td rowspan=\"\(span)\">\(e(date(a.at)))</td><td rowspan=\"\(span)\">\(e(a.upstream ?? "-"))</td>"
                + "<td rowspan=\"\(span)\">\(e(a.host ?? "-"))</td><td rowspan=\"\(span)\">\(e(a.owner))</td>"
            guard !a.recipients.isEmpty else {
                html += "<tr>\(head)<td></td><td></td><td></td></tr>"
                continue
            }
            for (k, r) in a.recipients.enumerated() {
                html += "<tr>\(k == 0 ? head : "")<td>&lt;\(e(r.address))&gt;</td><td>\(e(r.state.rawValue))</td><td>\(e(r.reply))</td></tr>"
            }
        }
        return html + "</tbody></table>"
    }
}
