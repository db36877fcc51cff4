/// A counter the relay keeps for plugins (``PolicyHost/counters``): amounts counted
/// over a sliding window, e.g. `rate-limit/user/alice/messages` per hour.
///
/// With the embedded store the counters live in the relay's memory and survive a
/// reload; with the PostgreSQL store (SPEC §6) they are in the database, shared by
/// every node of the cluster and kept across restarts, so a limit of N admits N
/// messages across all nodes together.
public struct CounterID: Sendable, Hashable, CustomStringConvertible {
    /// The counter's name; prefix it with the plugin's name (`rate-limit/…`).
    public var name: String
    /// The window in seconds: what was committed longer ago no longer counts.
    public var window: Double

    public init(name: String, window: Double) {
        self.name = name
        self.window = window
    }

    public var description: String { "\(name) per \(PolicyUnits.formatDuration(window))" }
}

/// One amount a transaction wants to count, with the limit it must stay within.
public struct CounterCharge: Sendable, Hashable {
    public var counter: CounterID
    public var amount: Int
    /// The most the counter may hold with this amount added.
    public var limit: Int

    public init(_ counter: CounterID, amount: Int, limit: Int) {
        self.counter = counter
        self.amount = amount
        self.limit = limit
    }
}

/// What ``PolicyCounters/reserve(_:sessionID:now:)`` answered.
public enum CounterReservation: Sendable, Hashable {
    /// Every charge fitted and is reserved for the session's transaction; with what
    /// each counter held besides this transaction's share.
    case reserved(used: [CounterID: Int])
    /// This counter would pass its limit: it holds `used` already (committed amounts
    /// and other transactions' reservations). Nothing was reserved.
    case exceeded(CounterID, used: Int)
}

/// The relay's counters, offered to every plugin through ``PolicyHost/counters``.
///
/// A stage **reserves** at the phase that decides (atomically: all charges or none),
/// and the relay does the rest: it **commits** a transaction's reservations when its
/// message is accepted (queued, or discarded by a stage) and **releases** them when the
/// transaction ends otherwise (refused, RSET, a failed store, the client gone). So
/// counters count accepted mail only, concurrent sessions — on one node or many —
/// cannot together pass a limit, and a stage needs no ``PolicyStage/messageAccepted(_:)``
/// for counting. A reservation that is never committed or released (a node that died)
/// stops counting after ten minutes.
///
/// A transaction holds one reservation per counter: reserving again (at `data`, after
/// `mail`) replaces the amount, and the check does not count the transaction twice.
public protocol PolicyCounters: Sendable {
    /// What each counter holds now: amounts committed within its window, and
    /// reservations of transactions in progress. Changes nothing (a dry run uses this).
    func usage(_ counters: [CounterID], now: Double) async throws -> [CounterID: Int]

    /// Reserves every charge for the current transaction of `sessionID` when each
    /// fits its limit, or nothing. Throws when the counters cannot be reached (the
    /// stage's `on_error` applies).
    func reserve(_ charges: [CounterCharge], sessionID: String, now: Double) async throws -> CounterReservation
}

/// One counter as an administrator looks at it (``PolicyCounterStore/listing(prefix:now:maximum:)``):
/// what it holds now and the lowest limit a charge within its window was checked against.
public struct CounterUsage: Sendable, Hashable {
    public var counter: CounterID
    /// Committed amounts within the window and reservations in progress.
    public var used: Int
    /// The lowest limit of the charges within its window: a counter that two limits
    /// share (a client address counted under a department's limit and the stage's) is
    /// as full as the lower one.
    public var limit: Int

    public init(counter: CounterID, used: Int, limit: Int) {
        self.counter = counter
        self.used = used
        self.limit = limit
    }

    /// How full it is, `used / limit` (a limit of 0 counts as full once used).
    public var fullness: Double { limit > 0 ? Double(used) / Double(limit) : (used > 0 ? .infinity : 0) }

    /// Fullest first, then by name and window: the order of a listing.
    public static func fullestFirst(_ a: CounterUsage, _ b: CounterUsage) -> Bool {
        if a.fullness != b.fullness { return a.fullness > b.fullness }
        return (a.counter.name, a.counter.window) < (b.counter.name, b.counter.window)
    }
}

/// The relay's side of the counters: commit and release by transaction, and the
/// listing the web console shows. Plugins see only ``PolicyCounters``.
public protocol PolicyCounterStore: PolicyCounters {
    /// The counters whose names start with `prefix` that hold something now, fullest
    /// first (``CounterUsage/fullestFirst(_:_:)``), at most `maximum` of them, and how
    /// many there are in all.
    func listing(prefix: String, now: Double, maximum: Int) async throws -> (counters: [CounterUsage], total: Int)

    /// The transaction of `sessionID` was accepted: its reservations count from `now`.
    func commit(sessionID: String, now: Double) async
    /// The transaction of `sessionID` ended without a message: its reservations go.
    func release(sessionID: String) async
}
