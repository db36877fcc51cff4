import NIOConcurrencyHelpers
import Prometheus

/// The relay's counters and histograms, exposed in Prometheus text format at `/metrics`.
public final class RelayMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let accepted: Counter
    private let refusedStore: Counter
    private let contentBuffered: Gauge
    private let contentBudget: Gauge
    /// Read at each exposition: the content sessions hold now.
    private let contentSample = NIOLockedValueBox<(@Sendable () -> (inUse: Int, limit: Int))?>(nil)
    private var stageDuration: MetricNameDescriptor { MetricNameDescriptor(namespace: "tollgate", subsystem: "policy", metricName: "stage_duration", unitName: "seconds", helpText: "Time a policy stage took to decide one phase") }
    private var decisions: MetricNameDescriptor { MetricNameDescriptor(namespace: "tollgate", subsystem: "policy", metricName: "decisions", unitName: "total", helpText: "Policy decisions by stage, phase and verdict") }
    private var shadowDecisions: MetricNameDescriptor { MetricNameDescriptor(namespace: "tollgate", subsystem: "policy", metricName: "shadow_decisions", unitName: "total", helpText: "Verdicts of stages in shadow mode (recorded, not applied) by stage, phase and verdict") }
    private var deliveries: MetricNameDescriptor { MetricNameDescriptor(namespace: "tollgate", subsystem: "delivery", metricName: "recipients", unitName: "total", helpText: "Recipient delivery outcomes by upstream and result") }

    public init() {
        accepted = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "tollgate", subsystem: "smtp", metricName: "messages_accepted", unitName: "total", helpText: "Messages accepted and queued"), labels: [])
        contentBuffered = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "tollgate", subsystem: "content", metricName: "buffered", unitName: "bytes", helpText: "Message content held in memory by sessions (receiving, deciding, storing)"), labels: [])
        contentBudget = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "tollgate", subsystem: "content", metricName: "budget", unitName: "bytes", helpText: "limits.content_memory: past it, DATA gets 451 4.3.0"), labels: [])
        refusedStore = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "tollgate", subsystem: "spool", metricName: "write_failures", unitName: "total", helpText: "Messages that could not be stored (answered 4xx)"), labels: [])
    }

    public func messageAccepted() { accepted.increment() }
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
