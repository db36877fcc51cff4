import TollgatePolicy

/// The `rate-limit` stage: limits accepted mail per user, sender, client address or
/// department, in messages, recipients and bytes per window.
///
/// - `mail`: would one more message exceed a `messages` limit? → `451 4.7.1`.
/// - `rcpt`: would the recipients so far in this transaction plus this one exceed a
///   `recipients` limit? → `452 4.7.1` for this recipient (the client may retry the
///   rest in a later transaction).
/// - `data`: would the message's size exceed a `bytes` limit (and, re-checked, the
///   messages and recipients limits)? → `451 4.7.1`. A message larger than a `bytes`
///   limit on its own could never pass: `552 5.3.4`.
/// - Other phases continue.
///
/// The counters are the relay's (``PolicyHost/counters``): each phase **reserves** what
/// it checks, atomically, so concurrent sessions — on one node or across a cluster on
/// PostgreSQL — cannot together pass a limit; the relay commits the reservations when
/// the message is accepted and releases them otherwise, so only accepted mail counts.
/// A dry run (`tollgate explain`) only reads them. They survive a reload (and, in a
/// cluster's database, a restart). Time comes only from ``PolicyHost/now()``.
public struct RateLimitStage: PolicyStage {
    let settings: RateLimitSettings
    let host: any PolicyHost

    public init(settings: RateLimitSettings, host: any PolicyHost) {
        self.settings = settings
        self.host = host
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

    /// The limits that apply with the subject each one counts.
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
            pending = Usage(messages: 1, recipients: context.recipients.count, bytes: max(0, context.messageSize ?? 0))
            measures = [.messages, .recipients, .bytes]
        default:
            return .continue
        }
        let checks = applicable(context, measures: measures)
        guard !checks.isEmpty else { return PolicyDecision(.continue, reason: "no rate limit applies") }
        for (limit, counter) in checks where limit.measure == .bytes && pending.bytes > limit.limit {
            let subject = "\(limit.key.rawValue) \(counter.value)"
            let reason = "message of \(pending.bytes) bytes is larger than the limit of \(limit) for \(subject) (\(limit.origin))"
            log(reason, context: context, counter: counter)
            return PolicyDecision(
                .reject(PolicyReply(code: 552, enhancedCode: "5.3.4", text: "Message too large for the rate limit of \(limit) for \(subject)")),
                reason: reason
            )
        }
        let charges = checks.map { limit, counter in CounterCharge(counter.counter(limit.measure), amount: pending[limit.measure], limit: limit.limit) }
        let now = host.now()
        // What the counters held besides this transaction's share, for the trace.
        let used: [CounterID: Int]
        if context.dryRun {
            used = try await host.counters.usage(charges.map(\.counter), now: now)
            // A dry run (explain, the console) tells every limit, not only the first passed.
            if let index = checks.indices.first(where: { (used[charges[$0].counter] ?? 0) + charges[$0].amount > checks[$0].0.limit }) {
                var decision = refusal(checks[index].0, checks[index].1, used: used[charges[index].counter] ?? 0, adding: charges[index].amount, context: context)
                let others = checks.indices.filter { $0 != index }.map { i in
                    "\(checks[i].0.key.rawValue) \(checks[i].1.value) \(used[charges[i].counter] ?? 0)+\(charges[i].amount) of \(checks[i].0)"
                }
                if !others.isEmpty { decision.reason += "; also: " + others.joined(separator: "; ") }
                return decision
            }
        } else {
            switch try await host.counters.reserve(charges, sessionID: context.sessionID, now: now) {
            case .reserved(let usage):
                used = usage
            case .exceeded(let id, let held):
                let index = charges.firstIndex { $0.counter == id } ?? 0
                return refusal(checks[index].0, checks[index].1, used: held, adding: charges[index].amount, context: context)
            }
        }
        let within = checks.enumerated().map { index, check in
            "\(check.0.key.rawValue) \(check.1.value) \(used[charges[index].counter] ?? 0)+\(charges[index].amount) of \(check.0)"
        }
        return PolicyDecision(.continue, reason: "within limits: " + within.joined(separator: "; "))
    }

    private func refusal(_ limit: RateLimit, _ counter: CounterKey, used: Int, adding: Int, context: PolicyContext) -> PolicyDecision {
        let subject = "\(limit.key.rawValue) \(counter.value)"
        let reason = "\(subject): \(used) used, \(adding) more would exceed \(limit) (\(limit.origin))"
        log(reason, context: context, counter: counter)
        let text = "Rate limit exceeded: at most \(limit) for \(subject), try again later"
        let reply = context.phase == .rcpt
            ? PolicyReply(code: 452, enhancedCode: "4.7.1", text: text)
            : PolicyReply(code: 451, enhancedCode: "4.7.1", text: text)
        return PolicyDecision(.defer(reply), reason: reason)
    }

    private func log(_ reason: String, context: PolicyContext, counter: CounterKey) {
        guard !context.dryRun else { return }
        host.log(
            .notice, "rate limit exceeded",
            metadata: [
                "smtp.session.id": context.sessionID, "rate_limit.key": counter.key.rawValue, "rate_limit.value": counter.value,
                "rate_limit.reason": reason,
            ]
        )
    }
}
