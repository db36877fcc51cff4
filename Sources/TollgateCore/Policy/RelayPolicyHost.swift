import Foundation
import Logging
import TollgatePolicy

/// The relay as plugins see it: logging, the clock and department policies.
public final class RelayPolicyHost: PolicyHost {
    private let logger: Logger
    private let clock: @Sendable () -> Double
    public let policies: DepartmentPolicies

    public init(logger: Logger, policies: DepartmentPolicies, clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
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
        nil
    }

    public func departments() -> [DepartmentInfo] {
        policies.departments.map(\.info)
    }
}
