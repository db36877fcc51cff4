import Logging
import NIOConcurrencyHelpers

/// What the console's statistics page shows (``ConsoleStatistics/snapshot(now:counterKey:)``).
public struct ConsoleStatisticsSnapshot: Sendable {
    /// A count by name, largest first.
    public struct Count: Sendable, Hashable {
        public var name: String
        public var count: Int
        public init(_ name: String, _ count: Int) {
            self.name = name
            self.count = count
        }
    }

    /// One refused command (an `event=refused` log line).
    public struct Refusal: Sendable, Hashable {
        public var at: Double
        public var stage: String
        public var phase: String
        public var reply: String
        public var client: String
        public var user: String
        public var sender: String
        public var recipient: String
    }

    /// Delivery results of one upstream (recipients).
    public struct Upstream: Sendable, Hashable {
        public var name: String
        public var sent = 0
        public var deferred = 0
        public var bounced = 0
    }

    /// A user's or department's rate limits, as the pipeline's dry run reports them.
    public struct Limit: Sendable, Hashable {
        public var subject: String
        public var text: String
        public init(subject: String, text: String) {
            self.subject = subject
            self.text = text
        }
    }

    /// The window the counts cover, in seconds, and since when events are counted.
    public var window: Double
    public var countingSince: Double
    public var acceptedBySender: [Count] = []
    public var acceptedByUser: [Count] = []
    public var acceptedByDepartment: [Count] = []
    public var refusalsByStage: [Count] = []
    public var recentRefusals: [Refusal] = []
    public var upstreams: [Upstream] = []
    public var limits: [Limit] = []

    /// Who sent the most in the window, with what their last message showed (for a
    /// dry run of the rate limits as they would see it).
    public struct Sender: Sendable, Hashable {
        public var user: String?
        public var department: String?
        public var sender: String
        public var client: String
    }
    public var busiest: [Sender] = []

    /// One rate-limit counter that holds something now: `used` of `limit` of
    /// `measure` for `value` of `key` (user, department, sender, client) per `window`.
    public struct Counter: Sendable, Hashable {
        public var key: String
        public var value: String
        public var measure: String
        public var window: Double
        public var used: Int
        public var limit: Int
        public init(key: String, value: String, measure: String, window: Double, used: Int, limit: Int) {
            self.key = key
            self.value = value
            self.measure = measure
            self.window = window
            self.used = used
            self.limit = limit
        }
    }
    /// The fullest counters (at most ``maxCounters``), and how many hold something.
    public var counters: [Counter] = []
    public var countersTotal = 0
    /// The key the counters are filtered by (`user`, `department`, `sender`, `client`), if any.
    public var counterKey: String?
    /// Why the counters could not be read, if they could not.
    public var countersProblem: String?
    public static let maxCounters = 100
    public static let counterKeys = ["user", "department", "sender", "client"]
}

/// Where the statistics page gets its figures.
public protocol ConsoleStatistics: Sendable {
    /// The figures at `now`; the counters only of `counterKey` if it is given (one of
    /// ``ConsoleStatisticsSnapshot/counterKeys``).
    func snapshot(now: Double, counterKey: String?) async -> ConsoleStatisticsSnapshot
}

/// The relay's events of the last hour, counted from its own `event=accepted`,
/// `event=refused` and `event=delivery` log lines (SPEC §8): the console summarises
/// exactly what the log says. Bounded: about ``maxEvents`` events are kept (the
/// oldest go first), and the last ``maxRefusals`` refusals are listed.
public final class EventTally: Sendable {
    enum Event: Sendable {
        case accepted(sender: String, user: String?, department: String?, client: String)
        case refused(stage: String)
        case delivery(upstream: String, result: String)
    }

    public static let maxEvents = 100_000
    public static let maxRefusals = 50
    public let window: Double
    let started: Double
    private let events = NIOLockedValueBox<[(at: Double, event: Event)]>([])
    /// The last ``maxRefusals`` refusals whole (the events keep only their stage).
    private let refusals = NIOLockedValueBox<[ConsoleStatisticsSnapshot.Refusal]>([])

    public init(window: Double = 3600, started: Double) {
        self.window = window
        self.started = started
    }

    /// Counts one log event if it is one of the SPEC §8 events.
    public func record(_ metadata: Logger.Metadata, at now: Double) {
        guard case .string(let kind)? = metadata["event"] ?? nil else { return }
        // Values a client chose are cut to a bounded length: the tally's memory is bounded.
        func value(_ key: String) -> String? {
            guard let v = metadata[key] else { return nil }
            let text = String("\(v)".prefix(256))
            return text.isEmpty || text == "-" ? nil : text
        }
        let event: Event
        switch kind {
        case "accepted":
            // The accepted line gives the path (`<a@b>`, `<>`), the refused one the address.
            var sender = value("smtp.mail.from") ?? "<>"
            if sender.hasPrefix("<"), sender.hasSuffix(">") { sender = String(sender.dropFirst().dropLast()) }
            event = .accepted(sender: sender, user: value("policy.user"), department: value("policy.department"), client: value("client.address") ?? "-")
        case "refused":
            let refusal = ConsoleStatisticsSnapshot.Refusal(
                at: now, stage: value("policy.stage") ?? "smtp", phase: value("policy.phase") ?? "-", reply: value("smtp.reply") ?? "",
                client: value("client.address") ?? "-", user: value("policy.user") ?? "-", sender: value("smtp.mail.from") ?? "-",
                recipient: value("smtp.rcpt.to") ?? "-"
            )
            refusals.withLockedValue { kept in
                kept.append(refusal)
                if kept.count > Self.maxRefusals { kept.removeFirst(kept.count - Self.maxRefusals) }
            }
            event = .refused(stage: refusal.stage)
        case "delivery":
            event = .delivery(upstream: value("upstream.name") ?? "-", result: value("delivery.result") ?? "-")
        default:
            return
        }
        events.withLockedValue { all in
            all.append((now, event))
            // Trimmed a tenth at a time, so that appending stays cheap.
            if all.count > Self.maxEvents + Self.maxEvents / 10 { all.removeFirst(all.count - Self.maxEvents) }
        }
    }

    /// The counts of the last ``window``.
    public func snapshot(now: Double) -> ConsoleStatisticsSnapshot {
        let recent = events.withLockedValue { all -> [(at: Double, event: Event)] in
            if let firstKept = all.firstIndex(where: { now - $0.at <= window }) { all.removeFirst(firstKept) } else { all.removeAll() }
            return all
        }
        var senders: [String: Int] = [:]
        var users: [String: Int] = [:]
        var departments: [String: Int] = [:]
        var stages: [String: Int] = [:]
        var upstreams: [String: ConsoleStatisticsSnapshot.Upstream] = [:]
        // The last message of each user (or, without a user, each sender).
        var last: [String: ConsoleStatisticsSnapshot.Sender] = [:]
        for (_, event) in recent {
            switch event {
            case .accepted(let sender, let user, let department, let client):
                senders[sender.isEmpty ? "<>" : sender, default: 0] += 1
                if let user { users[user, default: 0] += 1 }
                if let department { departments[department, default: 0] += 1 }
                last[user.map { "user " + $0 } ?? "sender " + (sender.isEmpty ? "<>" : sender)] = .init(user: user, department: department, sender: sender, client: client)
            case .refused(let stage):
                stages[stage, default: 0] += 1
            case .delivery(let upstream, let result):
                var u = upstreams[upstream] ?? ConsoleStatisticsSnapshot.Upstream(name: upstream)
                switch result {
                case "sent": u.sent += 1
                case "bounced": u.bounced += 1
                default: u.deferred += 1
                }
                upstreams[upstream] = u
            }
        }
        func ranked(_ counts: [String: Int], top: Int = 20) -> [ConsoleStatisticsSnapshot.Count] {
            counts.map { ConsoleStatisticsSnapshot.Count($0.key, $0.value) }.sorted { ($0.count, $1.name) > ($1.count, $0.name) }.prefix(top).map { $0 }
        }
        var snapshot = ConsoleStatisticsSnapshot(window: window, countingSince: started)
        snapshot.acceptedBySender = ranked(senders)
        snapshot.acceptedByUser = ranked(users)
        snapshot.acceptedByDepartment = ranked(departments)
        snapshot.refusalsByStage = ranked(stages)
        snapshot.recentRefusals = refusals.withLockedValue { $0 }.filter { now - $0.at <= window }.reversed()
        snapshot.upstreams = upstreams.values.sorted { $0.name < $1.name }
        snapshot.busiest = snapshot.acceptedByUser.prefix(10).compactMap { last["user " + $0.name] }
        // Mail without a login: its senders.
        for sender in snapshot.acceptedBySender where snapshot.busiest.count < 10 {
            if let someone = last["sender " + sender.name] { snapshot.busiest.append(someone) }
        }
        for department in snapshot.acceptedByDepartment.prefix(10) where !snapshot.busiest.contains(where: { $0.department == department.name }) {
            if let someone = last.values.first(where: { $0.department == department.name }) { snapshot.busiest.append(someone) }
        }
        return snapshot
    }
}

/// A log handler that also counts the SPEC §8 events for the console's statistics:
/// it sees `info` events even when the log level is higher (only to count them; the
/// log itself still gets only what its level lets through).
public struct TallyingLogHandler<Inner: LogHandler>: LogHandler {
    var inner: Inner
    let tally: EventTally
    let clock: @Sendable () -> Double

    public init(_ inner: Inner, tally: EventTally, clock: @escaping @Sendable () -> Double) {
        self.inner = inner
        self.tally = tally
        self.clock = clock
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public var logLevel: Logger.Level {
        get { min(inner.logLevel, .info) }
        set { inner.logLevel = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        if let own = event.metadata, own["event"] != nil {
            tally.record(inner.metadata.merging(own) { $1 }, at: clock())
        }
        if event.level >= inner.logLevel { inner.log(event: event) }
    }
}
