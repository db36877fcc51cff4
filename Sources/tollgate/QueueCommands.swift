import ArgumentParser
import Foundation
import Logging
import TollgateApp
import TollgateConfiguration
import TollgateSpool

struct Queue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect and manage the queue (works whether or not the server runs).",
        subcommands: [List.self, Show.self, Retry.self, Hold.self, Release.self, Delete.self, Bounce.self]
    )

    static func openSpool(_ options: ConfigOption) async throws -> any Spool {
        try await openSpool(options.load())
    }

    static func openSpool(_ configuration: TollgateConfiguration) async throws -> any Spool {
        var logger = Logger(label: "tollgate.queue")
        logger.logLevel = .warning
        do {
            return try await SpoolFactory.open(configuration.spool, node: NodeIdentity.current(named: configuration.spool.node).name, logger: logger)
        } catch {
            throw UserError(message: "\(error)")
        }
    }

    static func requireAll(_ ids: [String], found: [String]) throws {
        let missing = ids.filter { !found.contains($0) }
        if !missing.isEmpty { throw UserError(message: "unknown queue id: \(missing.joined(separator: ", "))") }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One line per queued message.")
        @OptionGroup var options: ConfigOption
        @Flag(help: "One JSON object per line.") var json = false
        @Option(help: "queued, deferred or held.") var state: String?
        @Option(help: "Only messages from this sender.") var sender: String?
        @Option(help: "Only messages with this pending recipient.") var recipient: String?
        @Option(help: "Only messages from this authenticated user.") var user: String?
        @Option(help: "Only messages of this department.") var department: String?
        @Option(help: "Only messages this cluster node accepted or is delivering (spool.node).") var node: String?
        @Option(help: "Only messages going to this upstream (by name; the default upstream includes messages without a route).") var upstream: String?

        func validate() throws {
            if let state, QueueState(rawValue: state) == nil {
                throw ValidationError("--state must be one of \(QueueState.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }

        func filter(defaultUpstream: String?) -> QueueFilter {
            QueueFilter(
                state: state.flatMap(QueueState.init(rawValue:)), user: user, department: department, sender: sender,
                recipient: recipient, upstream: upstream, defaultUpstream: defaultUpstream, node: node
            )
        }

        func run() async throws {
            let configuration = try options.load()
            let spool = try await Queue.openSpool(configuration)
            let now = Date().timeIntervalSince1970
            let filter = self.filter(defaultUpstream: configuration.delivery.defaultUpstream)
            // The store filters; its pages are printed as they come.
            var offset = 0
            while true {
                let page = try await spool.list(filter: filter, page: QueuePage(offset: offset, limit: QueuePage.maximumLimit))
                if offset == 0, page.rows.isEmpty, !json {
                    // As Postfix's mailq; --json prints nothing, one object per message.
                    print(filter.isEmpty ? "the queue is empty" : "no queued message matches")
                    return
                }
                try printRows(page.rows, now: now, defaultUpstream: configuration.delivery.defaultUpstream)
                offset += page.rows.count
                if page.rows.count < QueuePage.maximumLimit || offset >= page.total { return }
            }
        }

        /// One line per message, or one JSON object with `--json`.
        private func printRows(_ rows: [QueueListing], now: Double, defaultUpstream: String?) throws {
            for m in rows {
                if json {
                    let object: [String: Any] = [
                        "id": m.id, "age_seconds": Int(now - m.createdAt), "size": m.size, "sender": m.sender,
                        "recipients": m.recipients, "state": m.state.rawValue, "attempts": m.attempts,
                        "last_error": m.lastError ?? NSNull(), "user": m.user ?? NSNull(), "department": m.department ?? NSNull(),
                        "accepted_by": m.acceptedBy, "claimed_by": m.claimedBy ?? NSNull(),
                        // Where it goes: its route's upstream, or the default one.
                        "upstream": m.upstream ?? defaultUpstream ?? NSNull(),
                    ]
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                } else {
                    let age = QueueFormat.age(now - m.createdAt)
                    let error = m.lastError.map { " \($0)" } ?? ""
                    print("\(m.id) \(age) \(m.size) <\(m.sender)> \(m.recipients.map { "<\($0)>" }.joined(separator: ",")) \(m.state.rawValue) \(m.attempts)\(error)")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Envelope, recipients, attempts and the policy decision trace of one message.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "Queue id.") var id: String

        func run() async throws {
            let spool = try await Queue.openSpool(options)
            if let m = try await spool.load(id) {
                print(QueueFormat.show(m, attempts: try await spool.attempts(id)))
            } else if let done = try await spool.history(id) {
                print(QueueFormat.show(done, attempts: try await spool.attempts(id)))
            } else {
                throw UserError(message: "unknown queue id: \(id) (not queued, and not delivered or bounced within spool.history)")
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make messages due now.")
        @OptionGroup var options: ConfigOption
        @Flag(help: "Every message.") var all = false
        @Argument(help: "Queue ids.") var ids: [String] = []

        func validate() throws {
            if all == !ids.isEmpty { throw ValidationError("give queue ids or --all") }
        }

        func run() async throws {
            let spool = try await Queue.openSpool(options)
            let now = Date().timeIntervalSince1970
            if all {
                try await spool.retry(nil, now: now)
            } else {
                try Queue.requireAll(ids, found: try await spool.retry(ids, now: now))
            }
        }
    }

    struct Hold: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set messages aside; they are not delivered until released.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "Queue ids.") var ids: [String]
        func run() async throws {
            try Queue.requireAll(ids, found: try await Queue.openSpool(options).hold(ids))
        }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Release held messages; they are due now.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "Queue ids.") var ids: [String]
        func run() async throws {
            try Queue.requireAll(ids, found: try await Queue.openSpool(options).release(ids, now: Date().timeIntervalSince1970))
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove messages without delivering or bouncing them.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "Queue ids.") var ids: [String]
        func run() async throws {
            try Queue.requireAll(ids, found: try await Queue.openSpool(options).delete(ids))
        }
    }

    struct Bounce: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Return messages to their senders now (the server sends the DSN on its next pass).")
        @OptionGroup var options: ConfigOption
        @Argument(help: "Queue ids.") var ids: [String]
        func run() async throws {
            try Queue.requireAll(ids, found: try await Queue.openSpool(options).requestBounce(ids))
        }
    }
}

enum QueueFormat {
    static func age(_ seconds: Double) -> String { QueueAge.text(seconds) }

    static func show(_ m: SpoolMessage, attempts: [DeliveryAttempt]) -> String {
        let next = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: m.nextAttempt))
        var extra: [String] = []
        if let owner = m.claimedBy { extra.append("claimed by:  \(owner) (delivering, or its lease has run out)") }
        if let e = m.lastError { extra.append("last error:  \(e)") }
        return render(
            id: m.id, createdAt: m.createdAt, sender: m.sender, size: m.size, envelope: m.envelope, upstream: m.upstream, acceptedBy: m.acceptedBy,
            state: "\(m.state.rawValue), attempts \(m.attempts), next \(next)", extra: extra, recipients: m.recipients, attempts: attempts
        )
    }

    /// A message whose delivery has ended, from the history.
    static func show(_ h: HistoryEntry, attempts: [DeliveryAttempt]) -> String {
        let completed = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: h.completedAt))
        return render(
            id: h.id, createdAt: h.createdAt, sender: h.sender, size: h.size, envelope: h.envelope, upstream: h.upstream, acceptedBy: h.acceptedBy,
            state: "\(h.result) at \(completed), attempts \(h.attempts) (no longer queued; the content is not kept)", extra: [], recipients: h.recipients,
            attempts: attempts
        )
    }

    private static func render(
        id: String, createdAt: Double, sender: String, size: Int, envelope: SpoolEnvelope, upstream: String?, acceptedBy: String,
        state: String, extra: [String], recipients: [SpoolRecipient], attempts: [DeliveryAttempt]
    ) -> String {
        var lines: [String] = []
        let date = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: createdAt))
        lines.append("id:          \(id)")
        lines.append("received:    \(date) from \(envelope.clientAddress) (\(envelope.helo ?? "-")) on \(envelope.listener)\(envelope.tls ? " with TLS" : "")")
        lines.append("sender:      <\(sender)>")
        lines.append("size:        \(size)")
        lines.append("state:       \(state)")
        if let user = envelope.user { lines.append("user:        \(user)") }
        if let dept = envelope.department { lines.append("department:  \(dept)") }
        if let upstream { lines.append("upstream:    \(upstream)") }
        if !acceptedBy.isEmpty { lines.append("accepted by: \(acceptedBy)") }
        lines += extra
        lines.append("recipients:")
        for r in recipients {
            lines.append("  <\(r.address)> \(r.state.rawValue), attempts \(r.attempts)\(r.lastReply.map { ", last reply: \($0)" } ?? "")")
        }
        lines += self.attempts(attempts)
        lines += trace(envelope)
        return lines.joined(separator: "\n")
    }

    /// Each recorded attempt: its number, time (UTC), upstream, host and claimer, then
    /// every recipient tried with its reply and what became of it.
    static func attempts(_ attempts: [DeliveryAttempt]) -> [String] {
        var lines = ["attempts:"]
        if attempts.isEmpty { lines.append("  (none recorded)") }
        if let first = attempts.first, first.number > 1 { lines.append("  (attempts before #\(first.number) are not kept)") }
        let iso = ISO8601DateFormatter()
        for a in attempts {
            let at = iso.string(from: Date(timeIntervalSince1970: a.at))
            lines.append("  #\(a.number) \(at) upstream \(a.upstream ?? "-"), host \(a.host ?? "-"), by \(a.owner)")
            for r in a.recipients {
                lines.append("    <\(r.address)> \(r.state.rawValue): \(r.reply)")
            }
        }
        return lines
    }

    private static func trace(_ envelope: SpoolEnvelope) -> [String] {
        var lines = ["decision trace:"]
        if envelope.trace.isEmpty { lines.append("  (no policy stages)") }
        for t in envelope.trace {
            lines.append("  \(t.phase) \(t.stage): \(t.verdict)\(t.shadow == true ? " (shadow)" : "")\(t.reason.isEmpty ? "" : " (\(t.reason))") \(String(format: "%.2f", t.milliseconds))ms")
        }
        return lines
    }
}
