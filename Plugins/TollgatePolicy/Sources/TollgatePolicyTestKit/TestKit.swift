/// The plugin test kit: settings trees with source locations, a policy host with an
/// injected clock (this file), sessions that give each phase's context as the relay
/// would (`TestSession`), and message fixtures (`TestMessages`).
import Synchronization
import TollgatePolicy

/// A settings tree written like YAML, turned into ``PolicySettings`` with the
/// locations a YAML loader would report (block style: one key or list item per line,
/// nested nodes indented by two columns, a scalar value after `key: `).
public indirect enum Y: Sendable, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral {
    case scalar(String)
    case list([Y])
    case map([(String, Y)])
    case null

    public init(stringLiteral value: String) { self = .scalar(value) }
    public init(integerLiteral value: Int) { self = .scalar("\(value)") }
    public init(arrayLiteral elements: Y...) { self = .list(elements) }
    public init(dictionaryLiteral elements: (String, Y)...) { self = .map(elements) }
    public init(nilLiteral: ()) { self = .null }

    /// The tree as it would be loaded from `file`, its first line being `line`.
    public func settings(file: String = "/etc/tollgate/tollgate.yaml", line: Int = 10, column: Int = 5) -> PolicySettings {
        var current = line
        return build(file: file, line: &current, column: column)
    }

    private func build(file: String, line: inout Int, column: Int) -> PolicySettings {
        let here = SourceLocation(file: file, line: line, column: column)
        switch self {
        case .null:
            line += 1
            return PolicySettings(.null, at: here)
        case .scalar(let text):
            line += 1
            return PolicySettings(.scalar(text), at: here)
        case .list(let items):
            var built: [PolicySettings] = []
            for item in items { built.append(item.build(file: file, line: &line, column: column + 2)) }
            return PolicySettings(.list(built), at: here)
        case .map(let entries):
            var built: [(key: String, keyLocation: SourceLocation, value: PolicySettings)] = []
            for (key, value) in entries {
                let keyLocation = SourceLocation(file: file, line: line, column: column)
                switch value {
                case .scalar(let text):
                    built.append((key, keyLocation, PolicySettings(.scalar(text), at: SourceLocation(file: file, line: line, column: column + key.count + 2))))
                    line += 1
                case .null:
                    built.append((key, keyLocation, PolicySettings(.null, at: SourceLocation(file: file, line: line, column: column + key.count + 2))))
                    line += 1
                default:
                    line += 1
                    built.append((key, keyLocation, value.build(file: file, line: &line, column: column + 2)))
                }
            }
            return PolicySettings(.map(built), at: here)
        }
    }
}

/// A ``PolicyHost`` for tests: a clock the test advances, fixed departments and their
/// sections for the plugin under test, captured logs.
public final class TestHost: PolicyHost {
    private let state = Mutex<(now: Double, logs: [String])>((1_700_000_000, []))
    public let departmentList: [DepartmentInfo]
    public let sections: [String: PolicySettings]
    /// The host's counters; commit or release them as the relay would.
    public let memoryCounters: MemoryCounters
    public var counters: any PolicyCounters { memoryCounters }

    public init(departments: [DepartmentInfo] = TestHost.exampleDepartments, sections: [String: PolicySettings] = [:], counters: MemoryCounters = MemoryCounters()) {
        self.departmentList = departments
        self.sections = sections
        self.memoryCounters = counters
    }

    public static let exampleDepartments: [DepartmentInfo] = [
        DepartmentInfo(name: "finance", ldapGroups: ["cn=finance,ou=groups,dc=example,dc=com"], networks: ["10.20.0.0/16"]),
        DepartmentInfo(name: "sales", ldapAttributes: ["departmentNumber": ["Sales"]]),
        DepartmentInfo(name: "engineering", ldapGroups: ["cn=engineering,ou=groups,dc=example,dc=com"]),
    ]

    public func log(_ level: PolicyLogLevel, _ message: String, metadata: [String: String]) {
        let line = "\(level.rawValue) \(message) " + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        state.withLock { $0.logs.append(line) }
    }

    public func now() -> Double { state.withLock { $0.now } }
    public func advance(_ seconds: Double) { state.withLock { $0.now += seconds } }
    public var logs: [String] { state.withLock { $0.logs } }

    public func departmentSettings(_ department: String) -> PolicySettings? { sections[department] }
    public func departments() -> [DepartmentInfo] { departmentList }
}
