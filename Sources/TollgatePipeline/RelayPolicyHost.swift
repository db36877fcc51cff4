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
