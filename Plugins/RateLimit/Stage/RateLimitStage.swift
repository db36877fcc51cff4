import TollgatePolicy

/// The `rate-limit` stage: limits accepted mail per user, sender, client address or
/// department, in messages, recipients and bytes per window.
///
/// - `mail`: would one more message exceed a `messages` limit? → `451 4.7.1`.
/// - `rcpt`: would the recipients so far in this transaction plus this one exceed a
///   `recipients` limit? → `452 4.7.1` for this recipient (the client may retry the
///   rest in a later transaction).
/// - `data`: would the message's size exceed a `bytes` limit (and, re-checked because
///   concurrent sessions may have been accepted meanwhile, the messages and recipients
///   limits)? → `451 4.7.1`. A message larger than a `bytes` limit on its own could never
///   pass: `552 5.3.4`.
/// - Other phases continue.
///
/// Counters count **accepted** mail only: they change in ``messageAccepted(_:)``, never
/// in ``evaluate(_:)``, and never for a dry run. Time comes only from
/// ``PolicyHost/now()``. The algorithm (a sliding log per counter) is described at
/// ``RateLimitCounters``. Counters live in the stage: they start empty when the
/// pipeline is rebuilt (reload or restart).
public struct RateLimitStage: PolicyStage {
    let settings: RateLimitSettings
    let host: any PolicyHost
    public let counters: RateLimitCounters

    public init(settings: RateLimitSettings, host: any PolicyHost, counters: RateLimitCounters? = nil) {
        self.settings = settings
        self.host = host
        self.counters = counters ?? RateLimitCounters(maxKeys: settings.maxKeys)
    }

    /// The limits that apply to a session: the stage's, with those of the same key and
    /// measure replaced by the department's own.
    func limits(for context: PolicyContext) -> [RateLimit] {
        guard let department = context.facts.department, let section = host.departmentSettings(department) else {
            return settings.limits
        }
        // Invalid rules were reported at load and by `tollgate check`; they are left out here.
        let own = DepartmentRateLimits.parse(section, department: department).0
        guard !own.isEmpty else { return settings.limits }
        let replaced = Set(own.map { "\($0.key.rawValue)/\($0.measure.rawValue)" })
        return settings.limits.filter { !replaced.contains("\($0.key.rawValue)/\($0.measure.rawValue)") } + own
    }

    /// The limits that apply with the counter each one reads.
    func applicable(_ context: PolicyContext, measures: Set<RateLimitMeasure>? = nil) -> [(RateLimit, CounterKey)] {
        limits(for: context).compactMap { limit in
            if let measures, !measures.contains(limit.measure) { return nil }
            guard let value = limit.key.value(in: context) else { return nil }
            return (limit, CounterKey(key: limit.key, value: value, window: limit.window))
        }
    }

    /// Messages at `mail`, recipients at `rcpt`, bytes (and a recheck) at `data`.
    public var phases: Set<PolicyPhase> { [.mail, .rcpt, .data] }

    public func evaluate(_ context: PolicyContext) async throws -> PolicyDecision {
        let pending: Usage
        let measures: Set<RateLimitMeasure>
        switch context.phase {
        case .mail:
            pending = Usage(messages: 1)
            measures = [.messages]
        case .rcpt:
            pending = Usage(recipients: context.recipients.count + 1)
            measures = [.recipients]
        case .data:
            pending = Usage(messages: 1, recipients: context.recipients.count, bytes: context.messageSize ?? 0)
            measures = [.messages, .recipients, .bytes]
        default:
            return .continue
        }
        let checks = applicable(context, measures: measures)
        guard !checks.isEmpty else { return PolicyDecision(.continue, reason: "no rate limit applies") }
        let used = await counters.usage(checks.map(\.1), now: host.now())

        var within: [String] = []
        for (limit, counter) in checks {
            let current = used[counter]?[limit.measure] ?? 0
            let adding = pending[limit.measure]
            let subject = "\(limit.key.rawValue) \(counter.value)"
            if limit.measure == .bytes && adding > limit.limit {
                let reason = "message of \(adding) bytes is larger than the limit of \(limit) for \(subject) (\(limit.origin))"
                log(reason, context: context, counter: counter)
                return PolicyDecision(
                    .reject(PolicyReply(code: 552, enhancedCode: "5.3.4", text: "Message too large for the rate limit of \(limit) for \(subject)")),
                    reason: reason
                )
            }
            if current + adding > limit.limit {
                let reason = "\(subject): \(current) used, \(adding) more would exceed \(limit) (\(limit.origin))"
                log(reason, context: context, counter: counter)
                let text = "Rate limit exceeded: at most \(limit) for \(subject), try again later"
                let reply = context.phase == .rcpt
                    ? PolicyReply(code: 452, enhancedCode: "4.7.1", text: text)
                    : PolicyReply(code: 451, enhancedCode: "4.7.1", text: text)
                return PolicyDecision(.defer(reply), reason: reason)
            }
            within.append("\(subject) \(current)+\(adding) of \(limit)")
        }
        return PolicyDecision(.continue, reason: "within limits: " + within.joined(separator: "; "))
    }

    /// Counts a message once it is durably queued (never for a dry run).
    public func messageAccepted(_ message: AcceptedMessage) async {
        let context = message.context
        guard !context.dryRun else { return }
        let keys = Set(applicable(context).map(\.1))
        guard !keys.isEmpty else { return }
        let usage = Usage(messages: 1, recipients: context.recipients.count, bytes: max(0, context.messageSize ?? 0))
        let dropped = await counters.record(keys, usage: usage, now: host.now())
        if dropped > 0 {
            host.log(
                .warning, "rate-limit counters full: dropped the least recently used",
                metadata: ["ratelimit.dropped": "\(dropped)", "ratelimit.max_keys": "\(counters.maxKeys)"]
            )
        }
    }

    private func log(_ reason: String, context: PolicyContext, counter: CounterKey) {
        guard !context.dryRun else { return }
        host.log(
            .notice, "rate limit exceeded",
            metadata: [
                "session.id": context.sessionID, "ratelimit.key": counter.key.rawValue, "ratelimit.value": counter.value,
                "ratelimit.reason": reason,
            ]
        )
    }
}
