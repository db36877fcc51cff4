/// Whether a ``StageMetricSample`` only grows (a count of events) or goes up and down
/// (a current size), as Prometheus' `counter` and `gauge` types.
public enum StageMetricKind: String, Sendable, Hashable {
    case counter
    case gauge
}

/// One value a stage exports to the relay's `/metrics` (see ``PolicyStage/metrics()``).
///
/// The relay renders it as `tollgate_<plugin>_<name>{stage="<plugin>",<labels>} <value>`,
/// the plugin's name with `-` turned into `_`: the `ldap` plugin's `cache_hits_total`
/// becomes `tollgate_ldap_cache_hits_total`. A counter's name should end in `_total`.
/// Names must match `[a-zA-Z_][a-zA-Z0-9_]*` and label names `[a-zA-Z_][a-zA-Z0-9_]*`
/// (not `stage`, which the relay sets); a sample that breaks either rule is left out
/// of the exposition and named in a warning in the relay's log.
public struct StageMetricSample: Sendable, Hashable {
    /// The name after the relay's prefix, e.g. `cache_hits_total`.
    public var name: String
    /// One line of help text (the `# HELP` line).
    public var help: String
    public var kind: StageMetricKind
    /// Extra labels of this series, e.g. `["result": "positive"]`.
    public var labels: [String: String]
    public var value: Double

    public init(name: String, help: String, kind: StageMetricKind, labels: [String: String] = [:], value: Double) {
        self.name = name
        self.help = help
        self.kind = kind
        self.labels = labels
        self.value = value
    }

    /// A counter sample.
    public static func counter(_ name: String, _ help: String, labels: [String: String] = [:], _ value: Double) -> StageMetricSample {
        StageMetricSample(name: name, help: help, kind: .counter, labels: labels, value: value)
    }

    /// A gauge sample.
    public static func gauge(_ name: String, _ help: String, labels: [String: String] = [:], _ value: Double) -> StageMetricSample {
        StageMetricSample(name: name, help: help, kind: .gauge, labels: labels, value: value)
    }
}
