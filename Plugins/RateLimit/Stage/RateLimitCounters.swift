/// One counter: a key's value (e.g. user `alice`) under a window length.
public struct CounterKey: Sendable, Hashable, CustomStringConvertible {
    public var key: RateLimitKey
    public var value: String
    public var window: Double

    public var description: String { "\(key.rawValue) \(value) per \(RateLimitFormat.duration(window))" }
}

/// Amounts of accepted mail.
public struct Usage: Sendable, Hashable {
    public var messages = 0
    public var recipients = 0
    public var bytes = 0

    public init(messages: Int = 0, recipients: Int = 0, bytes: Int = 0) {
        self.messages = messages
        self.recipients = recipients
        self.bytes = bytes
    }

    public subscript(measure: RateLimitMeasure) -> Int {
        switch measure {
        case .messages: return messages
        case .recipients: return recipients
        case .bytes: return bytes
        }
    }

    static func + (a: Usage, b: Usage) -> Usage {
        Usage(
            messages: a.messages &+ b.messages, recipients: a.recipients &+ b.recipients, bytes: a.bytes &+ b.bytes
        )
    }
}

/// The counters of accepted mail: a **sliding log** per ``CounterKey``.
///
/// Each accepted message appends an entry (time, messages, recipients, bytes) to the
/// log of every counter it applies to. The usage of a counter at time `now` is the sum
/// of its entries with `time > now - window`, so mail counts for exactly one window
/// after it was accepted: a limit of N per window is never exceeded in *any* window
/// (no burst of 2N across a fixed window's boundary), and a limit hit at time `t` by
/// mail accepted at `t0` is released at exactly `t0 + window`.
///
/// Memory is bounded two ways:
/// - **Per counter**: at most ``maxEntriesPerKey`` entries. Beyond that, the two adjacent
///   entries closest in time are merged into one carrying the later time. Merging only
///   ever makes mail count *longer* (never lets more through); with few messages per
///   window the log is exact.
/// - **Counters**: a counter whose entries have all left its window is dropped (swept at
///   most once a minute, on the next accepted message). If more than `maxKeys` counters
///   are still active, the least recently used are dropped (down to 90 %), which lets
///   those keys start afresh; that takes more live senders than `max_keys`.
///
/// Time is whatever the stage passes in (``PolicyHost/now()``); a clock that steps back
/// only makes entries count longer.
public actor RateLimitCounters {
    struct Entry {
        var time: Double
        var usage: Usage
    }

    struct Log {
        var entries: [Entry] = []
        var newest = -Double.infinity
        var lastUse = -Double.infinity
    }

    public let maxKeys: Int
    public let maxEntriesPerKey: Int
    static let sweepInterval: Double = 60

    private var logs: [CounterKey: Log] = [:]
    private var lastSweep = -Double.infinity
    private(set) var evicted = 0

    public init(maxKeys: Int = 100_000, maxEntriesPerKey: Int = 64) {
        self.maxKeys = max(1, maxKeys)
        self.maxEntriesPerKey = max(2, maxEntriesPerKey)
    }

    /// The usage of each counter now. Changes nothing (dry runs call this too).
    public func usage(_ keys: [CounterKey], now: Double) -> [CounterKey: Usage] {
        var result: [CounterKey: Usage] = [:]
        for key in keys where result[key] == nil {
            var total = Usage()
            if let log = logs[key] {
                let start = now - key.window
                for entry in log.entries where entry.time > start { total = total + entry.usage }
            }
            result[key] = total
        }
        return result
    }

    /// Adds accepted mail to each counter; returns how many other counters had to be
    /// dropped for room (normally 0).
    @discardableResult
    public func record(_ keys: Set<CounterKey>, usage: Usage, now: Double) -> Int {
        for key in keys {
            var log = logs[key] ?? Log()
            let start = now - key.window
            log.entries.removeAll { $0.time <= start }
            log.entries.append(Entry(time: now, usage: usage))
            log.newest = max(log.newest, now)
            log.lastUse = now
            if log.entries.count > maxEntriesPerKey { Self.mergeClosest(&log.entries) }
            logs[key] = log
        }
        guard now - lastSweep >= Self.sweepInterval || now < lastSweep || logs.count > maxKeys else { return 0 }
        let before = evicted
        sweep(now: now)
        return evicted - before
    }

    /// How many counters are held (for tests and logs).
    public var count: Int { logs.count }

    /// How many entries a counter holds (for tests).
    public func entryCount(_ key: CounterKey) -> Int { logs[key]?.entries.count ?? 0 }

    /// Drops counters with nothing left in their window, then the least recently used
    /// while more than `maxKeys` remain.
    func sweep(now: Double) {
        lastSweep = now
        logs = logs.filter { $0.value.newest > now - $0.key.window }
        guard logs.count > maxKeys else { return }
        let keep = maxKeys * 9 / 10
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
        let merged = Entry(
            time: max(entries[best].time, entries[best + 1].time),
            usage: entries[best].usage + entries[best + 1].usage
        )
        entries[best + 1] = merged
        entries.remove(at: best)
    }
}
