/// The counters of one relay process (``PolicyCounterStore``): what the relay offers
/// plugins with the embedded store, and what plugin tests can use as a host's counters.
///
/// Each counter is a **sliding log**: a committed amount is an entry (time, amount),
/// and the counter's usage at `now` is the sum of its entries with `time > now - window`
/// plus the reservations of transactions in progress. So an amount counts for exactly
/// one window after it was accepted: a limit of N per window is never passed in *any*
/// window (no burst of 2N across a boundary).
///
/// Memory is bounded two ways:
/// - **Per counter**: at most `maxEntriesPerCounter` entries; beyond that the two
///   adjacent entries closest in time are merged into one with the later time, which
///   only ever makes amounts count *longer*.
/// - **Counters**: one with nothing left in its window is dropped (swept at most once a
///   minute); past `maxCounters` the least recently used go (down to 90 %), which lets
///   those start afresh.
///
/// Reservations older than ``reservationLifetime`` (a transaction that was never
/// committed nor released) stop counting.
public actor MemoryCounters: PolicyCounterStore {
    struct Entry {
        var time: Double
        var amount: Int
        /// The limit the charge was checked against (the lowest, once merged).
        var limit: Int = 0
    }

    struct Log {
        var entries: [Entry] = []
        var newest = -Double.infinity
        var lastUse = -Double.infinity
    }

    struct Reservation {
        var amount: Int
        var since: Double
        var limit: Int
    }

    public let maxCounters: Int
    public let maxEntriesPerCounter: Int
    public static let reservationLifetime: Double = 600
    static let sweepInterval: Double = 60

    private var logs: [CounterID: Log] = [:]
    /// Per session, per counter, the amount its transaction holds.
    private var reservations: [String: [CounterID: Reservation]] = [:]
    private var lastSweep = -Double.infinity
    /// Counters dropped for room since the start.
    public private(set) var evicted = 0

    public init(maxCounters: Int = 100_000, maxEntriesPerCounter: Int = 64) {
        self.maxCounters = max(1, maxCounters)
        self.maxEntriesPerCounter = max(2, maxEntriesPerCounter)
    }

    public func usage(_ counters: [CounterID], now: Double) -> [CounterID: Int] {
        var result: [CounterID: Int] = [:]
        for counter in counters where result[counter] == nil {
            result[counter] = committed(counter, now: now) + reserved(counter, now: now, except: nil)
        }
        return result
    }

    public func reserve(_ charges: [CounterCharge], sessionID: String, now: Double) -> CounterReservation {
        var usage: [CounterID: Int] = [:]
        for charge in charges {
            let used = committed(charge.counter, now: now) + reserved(charge.counter, now: now, except: sessionID)
            if used + charge.amount > charge.limit { return .exceeded(charge.counter, used: used) }
            usage[charge.counter] = used
        }
        var held = reservations[sessionID] ?? [:]
        for charge in charges {
            // A later phase (or a second stage) charging the same counter replaces the
            // amount; the limit shown is the lower one.
            let since = held[charge.counter]?.since ?? now
            let limit = min(held[charge.counter]?.limit ?? charge.limit, charge.limit)
            held[charge.counter] = Reservation(amount: charge.amount, since: since, limit: limit)
        }
        reservations[sessionID] = held
        return .reserved(used: usage)
    }

    public func commit(sessionID: String, now: Double) {
        guard let held = reservations.removeValue(forKey: sessionID) else { return }
        for (counter, reservation) in held where reservation.amount > 0 {
            var log = logs[counter] ?? Log()
            log.entries.removeAll { $0.time <= now - counter.window }
            log.entries.append(Entry(time: now, amount: reservation.amount, limit: reservation.limit))
            log.newest = max(log.newest, now)
            log.lastUse = now
            if log.entries.count > maxEntriesPerCounter { Self.mergeClosest(&log.entries) }
            logs[counter] = log
        }
        if now - lastSweep >= Self.sweepInterval || now < lastSweep || logs.count > maxCounters { sweep(now: now) }
    }

    public func release(sessionID: String) {
        reservations[sessionID] = nil
    }

    public func listing(prefix: String, now: Double, maximum: Int) -> (counters: [CounterUsage], total: Int) {
        // The lowest limit charged within the window: a client address (or sender)
        // counted under a department's limit and under the stage's is as full as the
        // lower one says.
        var limits: [CounterID: Int] = [:]
        for (counter, log) in logs where counter.name.hasPrefix(prefix) {
            let start = now - counter.window
            for entry in log.entries where entry.time > start { limits[counter] = min(limits[counter] ?? entry.limit, entry.limit) }
        }
        for held in reservations.values {
            for (counter, r) in held where counter.name.hasPrefix(prefix) && now - r.since < Self.reservationLifetime {
                limits[counter] = min(limits[counter] ?? r.limit, r.limit)
            }
        }
        let all = limits.compactMap { counter, limit -> CounterUsage? in
            let used = committed(counter, now: now) + reserved(counter, now: now, except: nil)
            return used > 0 ? CounterUsage(counter: counter, used: used, limit: limit) : nil
        }
        return (Array(all.sorted(by: CounterUsage.fullestFirst).prefix(max(0, maximum))), all.count)
    }

    /// How many counters hold committed amounts (for tests and logs).
    public var count: Int { logs.count }

    /// How many entries a counter's log holds (for tests).
    public func entryCount(_ counter: CounterID) -> Int { logs[counter]?.entries.count ?? 0 }

    private func committed(_ counter: CounterID, now: Double) -> Int {
        guard let log = logs[counter] else { return 0 }
        let start = now - counter.window
        var total = 0
        for entry in log.entries where entry.time > start { total &+= entry.amount }
        return total
    }

    private func reserved(_ counter: CounterID, now: Double, except session: String?) -> Int {
        var total = 0
        for (id, held) in reservations where id != session {
            if let r = held[counter], now - r.since < Self.reservationLifetime { total &+= r.amount }
        }
        return total
    }

    /// Drops counters with nothing left in their window, stale reservations, then the
    /// least recently used counters while more than `maxCounters` remain.
    func sweep(now: Double) {
        lastSweep = now
        logs = logs.filter { $0.value.newest > now - $0.key.window }
        reservations = reservations.filter { _, held in held.values.contains { now - $0.since < Self.reservationLifetime } }
        guard logs.count > maxCounters else { return }
        let keep = maxCounters * 9 / 10
        let victims = logs.sorted { $0.value.lastUse < $1.value.lastUse }.prefix(logs.count - keep)
        for victim in victims { logs[victim.key] = nil }
        evicted += victims.count
    }

    /// Merges the adjacent pair of entries closest in time into one with the later time.
    static func mergeClosest(_ entries: inout [Entry]) {
        guard entries.count >= 2 else { return }
        var best = 0
        var bestGap = Double.infinity
        for index in 0..<(entries.count - 1) {
            let gap = abs(entries[index + 1].time - entries[index].time)
            if gap < bestGap {
                bestGap = gap
                best = index
            }
        }
        entries[best + 1] = Entry(
            time: max(entries[best].time, entries[best + 1].time), amount: entries[best].amount &+ entries[best + 1].amount,
            limit: min(entries[best].limit, entries[best + 1].limit)
        )
        entries.remove(at: best)
    }
}
