/// The relay as a plugin sees it: logging, a clock and per-department settings.
///
/// Plugins never see the relay's own types (`Logger`, `ByteBuffer`): those would be
/// linked twice, once on each side of the library boundary.
public protocol PolicyHost: Sendable {
    /// Logs a message with the relay's logger; `metadata` keys are dotted (`ldap.user`).
    func log(_ level: PolicyLogLevel, _ message: String, metadata: [String: String])
    /// Seconds since 1970, from the relay's clock (injectable in tests).
    func now() -> Double
    /// The settings section for this plugin in a department's policy file, if the
    /// department has one. Sections are validated by the factory at load and at `check`.
    func departmentSettings(_ department: String) -> PolicySettings?
    /// Every department the relay knows, with its membership rules (see ``DepartmentInfo``).
    func departments() -> [DepartmentInfo]
    /// Counters over sliding windows, shared by every stage and — with the PostgreSQL
    /// store — by every node of the cluster (see ``PolicyCounters``).
    var counters: any PolicyCounters { get }
}

/// Where a stage runs in the pipeline (``PolicyStage/placement``).
public enum StagePlacement: Sendable, Hashable {
    /// In the order of the configuration's `stages:` list.
    case asConfigured
    /// After every other stage, in configuration order among such stages; it runs
    /// even when an earlier stage accepted (a refusal still ends the phase).
    case last
}

public enum PolicyLogLevel: String, Sendable {
    case trace, debug, info, notice, warning, error, critical
}

/// A department as written in `policies/*.yaml`.
public struct DepartmentInfo: Sendable, Hashable {
    public var name: String
    /// Directory groups (DNs) whose members belong to the department.
    public var ldapGroups: [String]
    /// Attribute values (`attribute=value`) that put a user in the department.
    public var ldapAttributes: [String: [String]]
    /// Client networks (CIDR) whose sessions belong to the department.
    public var networks: [String]

    public init(name: String, ldapGroups: [String] = [], ldapAttributes: [String: [String]] = [:], networks: [String] = []) {
        self.name = name
        self.ldapGroups = ldapGroups
        self.ldapAttributes = ldapAttributes
        self.networks = networks
    }
}

/// One stage of the pipeline. Stages are shared by all sessions: keep state in an
/// actor or behind a lock.
public protocol PolicyStage: Sendable {
    /// The phases this stage decides. The relay does not call ``evaluate(_:)`` for the
    /// others (and, where no stage needs a phase, does not consult the pipeline at all).
    /// Read once when the pipeline is built. The default is every phase.
    var phases: Set<PolicyPhase> { get }

    /// Where the stage runs among the others. A ``StagePlacement/last`` stage (a
    /// signer) runs after every other stage, also after one that accepted, so that it
    /// sees the final message. Read once when the pipeline is built.
    var placement: StagePlacement { get }

    /// Decides one phase. Throwing counts as a failure of the stage and yields its
    /// configured `on_error` answer.
    func evaluate(_ context: PolicyContext) async throws -> PolicyDecision

    /// Verifies AUTH credentials. Stages that do not authenticate keep the default,
    /// which answers ``AuthOutcome/notHandled``.
    func authenticate(_ credentials: AuthCredentials, context: PolicyContext) async throws -> AuthOutcome

    /// Told after a message is durably queued (for counters of accepted mail).
    func messageAccepted(_ message: AcceptedMessage) async

    /// Told once when a client session has ended (the connection closed, for whatever
    /// reason), so that a stage holding per-session state — a milter's connection, a
    /// policy server's per-session context — can let it go. Not called for `explain`.
    func sessionClosed(sessionID: String) async

    /// Called once when the stage is replaced (reload) or the relay stops.
    func shutdown() async

    /// The stage's own counters and gauges, read at every scrape of the relay's
    /// `/metrics` and rendered under `tollgate_<plugin>_` (see ``StageMetricSample``).
    /// Must be quick and must not do I/O: answer from values the stage keeps. The
    /// default exports nothing.
    func metrics() async -> [StageMetricSample]
}

extension PolicyStage {
    public var phases: Set<PolicyPhase> { Set(PolicyPhase.allCases) }
    public var placement: StagePlacement { .asConfigured }

    public func authenticate(_ credentials: AuthCredentials, context: PolicyContext) async throws -> AuthOutcome {
        .notHandled
    }
    public func messageAccepted(_ message: AcceptedMessage) async {}
    public func sessionClosed(sessionID: String) async {}
    public func shutdown() async {}
    public func metrics() async -> [StageMetricSample] { [] }
}

/// What a plugin library hands the relay: a factory that validates settings and makes stages.
///
/// A plugin's `tollgate_plugin_create` entry point returns an instance of a class
/// conforming to this protocol, retained (`Unmanaged.passRetained(f).toOpaque()`).
public protocol PolicyStageFactory: AnyObject, Sendable {
    /// The plugin's name as used after `use:` in the configuration.
    var name: String { get }
    /// Checks `settings` (and each department's section, through `host`) and returns
    /// every problem found, located. An empty answer means valid.
    func validate(settings: PolicySettings, host: any PolicyHost) -> [PolicyDiagnostic]
    /// Makes a stage from valid settings.
    func makeStage(settings: PolicySettings, host: any PolicyHost) async throws -> any PolicyStage
}

/// A stage that can describe a user without their password — the facts a login
/// would attach — so that `tollgate explain --user U` shows what a real session of
/// that user would get. Optional: stages that authenticate may adopt it.
public protocol PolicyUserLookup: PolicyStage {
    /// The facts for `user`, or `nil` if the stage does not know the user. Must not
    /// count as a login attempt.
    func lookUpUser(_ user: String) async throws -> SessionFacts?
}
