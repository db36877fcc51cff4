import LDAPDirectory
import TollgatePolicy

#if canImport(Glibc)
import Glibc
#endif

/// Builds ``PolicySettings`` trees with line numbers, as the relay's YAML loader would.
enum Settings {
    enum Node: ExpressibleByStringLiteral, ExpressibleByArrayLiteral {
        case scalar(String)
        case list([String])
        init(stringLiteral value: String) { self = .scalar(value) }
        init(arrayLiteral elements: String...) { self = .list(elements) }
    }

    static let file = "/etc/tollgate/tollgate.yaml"

    /// A map of `entries` in `file`, key n on line n.
    static func map(entries: [(String, Node)], file: String = "/test.yaml") -> PolicySettings {
        PolicySettings(
            .map(entries.enumerated().map { index, entry in
                let location = SourceLocation(file: file, line: index + 1, column: 1)
                switch entry.1 {
                case .scalar(let s): return (entry.0, location, PolicySettings(.scalar(s), at: location))
                case .list(let l):
                    return (entry.0, location, PolicySettings(.list(l.map { PolicySettings(.scalar($0), at: location) }), at: location))
                }
            }),
            at: SourceLocation(file: file, line: 1, column: 1)
        )
    }

    /// A map whose n-th key sits on line n + 10, value at column 7.
    static func map(_ entries: KeyValuePairs<String, Node>, file: String = file) -> PolicySettings {
        var items: [(key: String, keyLocation: SourceLocation, value: PolicySettings)] = []
        for (index, entry) in entries.enumerated() {
            let line = index + 11
            let keyLocation = SourceLocation(file: file, line: line, column: 5)
            let valueLocation = SourceLocation(file: file, line: line, column: 7 + entry.key.count)
            let value: PolicySettings
            switch entry.value {
            case .scalar(let text):
                value = PolicySettings(.scalar(text), at: valueLocation)
            case .list(let texts):
                value = PolicySettings(.list(texts.map { PolicySettings(.scalar($0), at: valueLocation) }), at: valueLocation)
            }
            items.append((entry.key, keyLocation, value))
        }
        return PolicySettings(.map(items), at: SourceLocation(file: file, line: 10, column: 5))
    }
}

/// A ``PolicyHost`` for tests: a settable clock, fixed departments, captured logs.
final class TestHost: PolicyHost, @unchecked Sendable {
    private let lock = LDAPLocked<(now: Double, logs: [String])>((1_000_000, []))
    let departmentList: [DepartmentInfo]
    let sections: [String: PolicySettings]
    let counters: any PolicyCounters = MemoryCounters()

    init(departments: [DepartmentInfo] = TestHost.exampleDepartments, sections: [String: PolicySettings] = [:]) {
        self.departmentList = departments
        self.sections = sections
    }

    static let exampleDepartments: [DepartmentInfo] = [
        DepartmentInfo(name: "finance", ldapGroups: ["cn=finance,ou=groups,dc=example,dc=com"]),
        DepartmentInfo(name: "engineering", ldapGroups: ["CN=Engineering, OU=Groups, DC=Example, DC=Com"]),
        DepartmentInfo(name: "sales", ldapAttributes: ["departmentNumber": ["Sales"]]),
    ]

    func log(_ level: PolicyLogLevel, _ message: String, metadata: [String: String]) {
        let line = "\(level.rawValue) \(message) \(metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"
        lock.withLock { $0.logs.append(line) }
    }

    func now() -> Double { lock.withLock { $0.now } }
    func advance(_ seconds: Double) { lock.withLock { $0.now += seconds } }
    var logs: [String] { lock.withLock { $0.logs } }

    func departmentSettings(_ department: String) -> PolicySettings? { sections[department] }
    func departments() -> [DepartmentInfo] { departmentList }
}

/// A context for AUTH at the `auth` phase.
func authContext(session: String = "S1") -> PolicyContext {
    PolicyContext(phase: .auth, sessionID: session, listener: "submission", clientAddress: "127.0.0.1", tls: true)
}

/// Waits up to `seconds` for `body`, then gives up (returns `nil`), so that a hung
/// directory call cannot hang the test run.
func withDeadline<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async -> T) async -> T? {
    await withTaskGroup(of: T?.self) { group in
        group.addTask { await body() }
        group.addTask {
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}

/// AUTH with a deadline: a hung directory call fails the test instead of hanging it.
func login(_ stage: any PolicyStage, _ user: String, _ password: String, within seconds: Double = 10) async -> AuthOutcome? {
    await withDeadline(seconds) {
        do {
            return try await stage.authenticate(
                AuthCredentials(username: user, password: password, mechanism: "PLAIN"),
                context: authContext()
            )
        } catch {
            return .temporaryFailure(reason: "threw \(error)")
        }
    }
}

func facts(_ outcome: AuthOutcome?) -> SessionFacts? {
    if case .success(let facts) = outcome { return facts }
    return nil
}

func isFailure(_ outcome: AuthOutcome?, reason: String? = nil) -> Bool {
    if case .failure(let why) = outcome { return reason.map { why.contains($0) } ?? true }
    return false
}

func isTemporaryFailure(_ outcome: AuthOutcome?) -> Bool {
    if case .temporaryFailure = outcome { return true }
    return false
}

func seconds(_ body: () async -> Void) async -> Double {
    let start = ContinuousClock.now
    await body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}
