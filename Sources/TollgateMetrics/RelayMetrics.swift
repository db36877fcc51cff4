import NIOConcurrencyHelpers
import Prometheus

/// The relay's counters and histograms, exposed in Prometheus text format at `/metrics`.
public final class RelayMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let accepted: Counter
    private let discarded: Counter
    private let refusedStore: Counter
    private let contentBuffered: Gauge
    private let commitDuration: ValueHistogram
    private let commitBatch: ValueHistogram
    private let contentBudget: Gauge
    /// Read at each exposition: the content sessions hold now.
    private let contentSample = NIOLockedValueBox<(@Sendable () -> (inUse: Int, limit: Int))?>(nil)
    private var stageDuration: MetricNameDescriptor { MetricNameDescriptor(namespace: "tollgate", subsystem: "policy", metricName: "stage_duration", unitName: "seconds", helpText: "Time a policy stage took to decide one phase") }
    private var decisions: MetricNameDescriptor { MetricNameDescriptor(namespace: "tollgate", subsystem: "policy", metricName: "decisions", unitName: "total", helpText: "Policy decisions by stage, phase and verdict") }
    private var shadowDecisions: MetricNameDescriptor { MetricNameDescriptor(namespace: "tollgate", subsystem: "policy", metricName: "shadow_decisions", unitName: "total", helpText: "Verdicts of stages in shadow mode (recorded, not applied) by stage, phase and verdict") }
    private var deliveries: MetricNameDescriptor { MetricNameDescriptor(namespace: "tollgate", subsystem: "delivery", metricName: "recipients", unitName: "total", helpText: "Recipient delivery outcomes by upstream and result") }

    public init() {
        accepted = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "tollgate", subsystem: "smtp", metricName: "messages_accepted", unitName: "total", helpText: "Messages accepted and queued"), labels: [])
        discarded = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "tollgate", subsystem: "smtp", metricName: "messages_discarded", unitName: "total", helpText: "Messages accepted and dropped because a stage said discard"), labels: [])
        contentBuffered = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "tollgate", subsystem: "content", metricName: "buffered", unitName: "bytes", helpText: "Message content held in memory by sessions (receiving, deciding, storing)"), labels: [])
        contentBudget = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "tollgate", subsystem: "content", metricName: "budget", unitName: "bytes", helpText: "limits.content_memory: past it, DATA gets 451 4.3.0"), labels: [])
        commitDuration = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(namespace: "tollgate", subsystem: "spool", metricName: "commit_duration", unitName: "seconds", helpText: "Time of one group commit of the spool (new messages wait for it before 250)"),
            labels: [], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]
        )
        commitBatch = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(namespace: "tollgate", subsystem: "spool", metricName: "commit_batch", unitName: "operations", helpText: "Operations (new messages, attempts, changes) in one group commit of the spool"),
            labels: [], buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256]
        )
        refusedStore = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "tollgate", subsystem: "spool", metricName: "write_failures", unitName: "total", helpText: "Messages that could not be stored (answered 4xx)"), labels: [])
    }

    /// One group commit of the spool: how long it took and how many operations it held.
    public func spoolCommitted(_ duration: Duration, operations: Int) {
        let (seconds, attoseconds) = duration.components
        commitDuration.record(Double(seconds) + Double(attoseconds) / 1e18)
        commitBatch.record(Double(operations))
    }

    public func messageAccepted() { accepted.increment() }
    public func messageDiscarded() { discarded.increment() }
    public func storeFailed() { refusedStore.increment() }

    /// The series already made, by their labels: the registry is asked once per series,
    /// not once per event (it builds the metric's name and looks it up each time).
    private let decisionSeries = NIOLockedValueBox([String: (Counter, ValueHistogram)]())
    private let deliverySeries = NIOLockedValueBox([String: Counter]())
    private let shadowSeries = NIOLockedValueBox([String: Counter]())

    /// A shadow stage's would-be verdict (`tollgate_policy_shadow_decisions_total`).
    public func shadowDecided(stage: String, phase: String, verdict: String) {
        let key = stage + "\u{0}" + phase + "\u{0}" + verdict
        let counter = shadowSeries.withLockedValue { series in
            if let made = series[key] { return made }
            let made = registry.makeCounter(descriptor: shadowDecisions, labels: [("stage", stage), ("phase", phase), ("verdict", verdict)])
            series[key] = made
            return made
        }
        counter.increment()
    }

    public func stageDecided(stage: String, phase: String, verdict: String, seconds: Double) {
        let key = stage + "\u{0}" + phase + "\u{0}" + verdict
        let (counter, histogram) = decisionSeries.withLockedValue { series in
            if let made = series[key] { return made }
            let made = (
                registry.makeCounter(descriptor: decisions, labels: [("stage", stage), ("phase", phase), ("verdict", verdict)]),
                registry.makeValueHistogram(descriptor: stageDuration, labels: [("stage", stage), ("phase", phase)], buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5])
            )
            series[key] = made
            return made
        }
        counter.increment()
        histogram.record(seconds)
    }

    public func recipientDelivered(upstream: String, result: String) {
        let key = upstream + "\u{0}" + result
        let counter = deliverySeries.withLockedValue { series in
            if let made = series[key] { return made }
            let made = registry.makeCounter(descriptor: deliveries, labels: [("upstream", upstream), ("result", result)])
            series[key] = made
            return made
        }
        counter.increment()
    }

    // MARK: - What an operator looks for first

    /// `tollgate_build_info{version,abi} 1`.
    public func setBuildInfo(version: String, abi: Int) {
        gauge("build_info", "The running version and its plugin ABI", [("version", version), ("abi", "\(abi)")]).set(to: 1)
    }

    private let series = NIOLockedValueBox([String: Counter]())
    private let gauges = NIOLockedValueBox([String: Gauge]())
    /// What a sampled total was at the last scrape, so its counter grows by the difference.
    private let sampledTotals = NIOLockedValueBox([String: Int]())

    private static func key(_ name: String, _ labels: [(String, String)]) -> String {
        ([name] + labels.flatMap { [$0.0, $0.1] }).joined(separator: "\u{0}")
    }

    /// The series made once per name and labels, then reused.
    private func made<Metric>(_ cache: NIOLockedValueBox<[String: Metric]>, _ key: String, _ make: () -> Metric) -> Metric {
        cache.withLockedValue { made in
            if let metric = made[key] { return metric }
            let metric = make()
            made[key] = metric
            return metric
        }
    }

    private func counter(_ name: String, _ help: String, _ labels: [(String, String)]) -> Counter {
        made(series, Self.key(name, labels)) {
            registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "tollgate", metricName: name, unitName: "total", helpText: help), labels: labels)
        }
    }

    private func gauge(_ name: String, _ help: String, _ labels: [(String, String)]) -> Gauge {
        made(gauges, Self.key(name, labels)) {
            registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "tollgate", metricName: name, unitName: "", helpText: help), labels: labels)
        }
    }

    /// A counter kept elsewhere (a listener's), read at each scrape.
    private func sampleTotal(_ name: String, _ help: String, _ labels: [(String, String)], _ total: Int) {
        let key = Self.key(name, labels)
        let delta = sampledTotals.withLockedValue { last -> Int in
            let delta = total - (last[key] ?? 0)
            last[key] = total
            return delta
        }
        let counter = counter(name, help, labels)
        if delta > 0 { counter.increment(by: Int64(delta)) }
    }

    /// `tollgate_node_info{node,store} 1`: this node's name in the cluster and its store.
    public func setNodeInfo(node: String, store: String) {
        gauge("node_info", "This node's name (spool.node) and its store (sqlite, postgres)", [("node", node), ("store", store)]).set(to: 1)
    }

    /// `tollgate_spool_up`: 1 when the store answers, 0 when it does not (a cluster's
    /// database away), read at each scrape.
    public func spoolSampled(up: Bool) {
        gauge("spool_up", "Whether the spool (a cluster's database) answers", []).set(to: up ? 1 : 0)
    }

    /// Messages being delivered now, by the node holding the claim, and messages in the
    /// queue by department (`-`: none), read at each scrape.
    public func claimsAndDepartmentsSampled(claims: [String: Int], departments: [String: Int]) {
        let known = sampledLabels.withLockedValue { seen -> (claims: Set<String>, departments: Set<String>) in
            seen.claims.formUnion(claims.keys)
            seen.departments.formUnion(departments.keys)
            return seen
        }
        // A node or department that has none now reads 0, not its last value.
        for node in known.claims {
            gauge("cluster_claims", "Messages claimed for delivery, by the node holding the claim", [("node", node)]).set(to: Double(claims[node] ?? 0))
        }
        for department in known.departments {
            gauge("queue_department_messages", "Messages in the queue by department", [("department", department)]).set(to: Double(departments[department] ?? 0))
        }
    }

    private let sampledLabels = NIOLockedValueBox((claims: Set<String>(), departments: Set<String>()))

    /// Messages in the queue by state (`queued`, `deferred`, `held`), read at each scrape.
    public func queueSampled(_ byState: [String: Int]) {
        for (state, count) in byState {
            gauge("queue_messages", "Messages in the queue by state", [("state", state)]).set(to: Double(count))
        }
    }

    /// One listener's counters, read at each scrape.
    public struct ListenerSample: Sendable {
        public var listener: String
        public var openSessions: Int
        public var accepted: Int
        public var refusedClient: Int
        public var refusedLimit: Int
        public var tlsHandshakes: Int
        public var tlsFailures: Int
        public var bytesIn: Int
        public var bytesOut: Int
        /// Replies 4xx/5xx by `code/reason` (`5/policy`, `4/system`, …).
        public var refusals: [String: Int] = [:]

        public init(listener: String, openSessions: Int, accepted: Int, refusedClient: Int, refusedLimit: Int, tlsHandshakes: Int, tlsFailures: Int, bytesIn: Int, bytesOut: Int, refusals: [String: Int] = [:]) {
            self.refusals = refusals
            self.listener = listener
            self.openSessions = openSessions
            self.accepted = accepted
            self.refusedClient = refusedClient
            self.refusedLimit = refusedLimit
            self.tlsHandshakes = tlsHandshakes
            self.tlsFailures = tlsFailures
            self.bytesIn = bytesIn
            self.bytesOut = bytesOut
        }
    }

    public func listenerSampled(_ l: ListenerSample) {
        let listener = ("listener", l.listener)
        gauge("smtp_sessions", "Client sessions open now", [listener]).set(to: Double(l.openSessions))
        let connections = "Client connections: accepted, or refused at once (client not allowed, connection cap)"
        sampleTotal("smtp_connections", connections, [listener, ("result", "accepted")], l.accepted)
        sampleTotal("smtp_connections", connections, [listener, ("result", "refused_client")], l.refusedClient)
        sampleTotal("smtp_connections", connections, [listener, ("result", "refused_limit")], l.refusedLimit)
        let tls = "TLS handshakes with clients (STARTTLS or implicit), by result"
        sampleTotal("smtp_tls_handshakes", tls, [listener, ("result", "success")], l.tlsHandshakes)
        sampleTotal("smtp_tls_handshakes", tls, [listener, ("result", "failure")], l.tlsFailures)
        sampleTotal("smtp_received_bytes", "Octets read from clients (after TLS)", [listener], l.bytesIn)
        sampleTotal("smtp_sent_bytes", "Octets written to clients (after TLS)", [listener], l.bytesOut)
        for (key, count) in l.refusals {
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            sampleTotal(
                "smtp_refusals", "Replies 4xx/5xx to clients by class and the subject of their enhanced code (RFC 3463: policy, system, protocol, address, mailbox, content, network)",
                [listener, ("code", parts[0]), ("reason", parts[1])], count
            )
        }
    }

    /// An AUTH attempt's result: `success`, `failure` or `temporary_failure`.
    public func authenticated(listener: String, result: String) {
        counter("smtp_auth", "AUTH attempts by listener and result", [("listener", listener), ("result", result)]).increment()
    }

    /// The size of a message accepted on `listener`.
    public func messageReceived(listener: String, bytes: Int) {
        counter("smtp_message_bytes", "Octets of messages accepted and queued", [("listener", listener)]).increment(by: Int64(bytes))
    }

    /// One delivery attempt of one message to an upstream host: `sent` (every
    /// recipient tried got 2xx), `deferred` (some 4xx), `bounced` (5xx and no 4xx).
    public func deliveryAttempted(upstream: String, host: String, result: String, bytesSent: Int) {
        counter("delivery_attempts", "Delivery attempts of a message by upstream, host and result", [("upstream", upstream), ("host", host), ("result", result)]).increment()
        if bytesSent > 0 {
            counter("delivery_sent_bytes", "Octets of messages delivered to upstreams", [("upstream", upstream)]).increment(by: Int64(bytesSent))
        }
    }

    /// Where ``exposition()`` reads the content held by sessions.
    public func sampleContent(_ sample: @escaping @Sendable () -> (inUse: Int, limit: Int)) {
        contentSample.withLockedValue { $0 = sample }
    }

    public func exposition() -> [UInt8] {
        if let sample = contentSample.withLockedValue({ $0 })?() {
            contentBuffered.set(Double(sample.inUse))
            contentBudget.set(Double(sample.limit))
        }
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
