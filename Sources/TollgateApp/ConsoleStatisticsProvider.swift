import NIOConcurrencyHelpers
import TollgateConsole
import TollgatePipeline
import TollgatePolicy

/// The console's statistics: the event tally of the last hour, and for its busiest
/// users and departments what the `rate-limit` stages would say of one more message —
/// a dry run, as `tollgate explain` does it, which counts nothing — and the
/// `rate-limit` counters themselves, fullest first, from the relay's counter store
/// (the cluster's, with the PostgreSQL store).
struct ConsoleStatisticsProvider: ConsoleStatistics {
    let tally: EventTally
    let policy: NIOLockedValueBox<PolicySetup>
    let counters: any PolicyCounterStore

    func snapshot(now: Double, counterKey: String?) async -> ConsoleStatisticsSnapshot {
        var snapshot = tally.snapshot(now: now)
        snapshot.counterKey = counterKey
        do {
            let listing = try await counters.listing(
                prefix: "rate-limit/" + (counterKey.map { $0 + "/" } ?? ""), now: now, maximum: ConsoleStatisticsSnapshot.maxCounters
            )
            snapshot.counters = listing.counters.compactMap(Self.counter)
            snapshot.countersTotal = listing.total
        } catch {
            snapshot.countersProblem = "The counters cannot be read: \(error)"
        }
        let stages = policy.withLockedValue { $0 }.pipeline.stages.filter { $0.name == "rate-limit" && $0.phases.contains(.mail) }
        guard !stages.isEmpty else { return snapshot }
        for someone in snapshot.busiest {
            let context = PolicyContext(
                phase: .mail, sessionID: "console", listener: "console", clientAddress: someone.client, authenticatedUser: someone.user,
                sender: someone.sender, facts: SessionFacts(user: someone.user, department: someone.department), dryRun: true
            )
            var said: [String] = []
            for stage in stages {
                do {
                    let decision = try await stage.stage.evaluate(context)
                    said.append(decision.reason)
                } catch {
                    said.append("cannot tell: \(error)")
                }
            }
            let subject = [someone.user.map { "user \($0)" }, someone.department.map { "department \($0)" }, "sender \(someone.sender.isEmpty ? "<>" : someone.sender)"].compactMap { $0 }.joined(separator: ", ")
            snapshot.limits.append(.init(subject: subject, text: said.joined(separator: "; ")))
        }
        return snapshot
    }
}

extension ConsoleStatisticsProvider {
    /// A `rate-limit/KEY/MEASURE/VALUE` counter (RateLimitUsage), or nil for a name
    /// of another shape. The value is last: it may itself hold slashes.
    static func counter(_ usage: CounterUsage) -> ConsoleStatisticsSnapshot.Counter? {
        let parts = usage.counter.name.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "rate-limit" else { return nil }
        return .init(
            key: String(parts[1]), value: String(parts[3]), measure: String(parts[2]), window: usage.counter.window, used: usage.used, limit: usage.limit
        )
    }
}
