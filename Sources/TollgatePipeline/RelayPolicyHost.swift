import Foundation
import Logging
import TollgatePolicy
import TollgateConfiguration
import TollgateMetrics
import SMTPCore

/// The relay as one plugin sees it: logging, the clock, and its own section of each
/// department policy file.
public final class RelayPolicyHost: PolicyHost {
    private let logger: Logger
    private let clock: @Sendable () -> Double
    public let plugin: String
    public let policies: DepartmentPolicies
    public let counters: any PolicyCounters

    public init(
        plugin: String, logger: Logger, policies: DepartmentPolicies, counters: any PolicyCounters = MemoryCounters(),
        clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) {
        self.plugin = plugin
        self.counters = counters
        var logger = logger
        logger[metadataKey: "policy.stage"] = .string(plugin)
        self.logger = logger
        self.policies = policies
        self.clock = clock
    }

    public func log(_ level: PolicyLogLevel, _ message: String, metadata: [String: String]) {
        let swiftLevel = Logger.Level(rawValue: level.rawValue) ?? .info
        logger.log(level: swiftLevel, "\(message)", metadata: metadata.mapValues { .string($0) })
    }

    public func now() -> Double { clock() }

    public func departmentSettings(_ department: String) -> PolicySettings? {
        policies.department(named: department)?.sections[plugin]
    }

    public func departments() -> [DepartmentInfo] {
        policies.departments.map(\.info)
    }
}

/// The counters a shadow stage sees: the relay's, under names of their own
/// (`shadow/…`), so that a shadow `rate-limit` next to an enforced one with the same
/// keys never adds to the enforced one's counts, nor reads them as its own. Its
/// reservations are committed and released with the transaction like any other.
public struct ShadowCounters: PolicyCounters {
    let base: any PolicyCounters

    public init(_ base: any PolicyCounters) {
        self.base = base
    }

    static func shadow(_ id: CounterID) -> CounterID { CounterID(name: "shadow/" + id.name, window: id.window) }

    public func usage(_ counters: [CounterID], now: Double) async throws -> [CounterID: Int] {
        let used = try await base.usage(counters.map(Self.shadow), now: now)
        return Dictionary(uniqueKeysWithValues: counters.map { ($0, used[Self.shadow($0)] ?? 0) })
    }

    public func reserve(_ charges: [CounterCharge], sessionID: String, now: Double) async throws -> CounterReservation {
        let renamed = charges.map { CounterCharge(Self.shadow($0.counter), amount: $0.amount, limit: $0.limit) }
        switch try await base.reserve(renamed, sessionID: sessionID, now: now) {
        case .reserved(let used):
            return .reserved(used: Dictionary(uniqueKeysWithValues: charges.map { ($0.counter, used[Self.shadow($0.counter)] ?? 0) }))
        case .exceeded(let id, let used):
            let original = charges.first { Self.shadow($0.counter) == id }?.counter ?? id
            return .exceeded(original, used: used)
        }
    }
}
