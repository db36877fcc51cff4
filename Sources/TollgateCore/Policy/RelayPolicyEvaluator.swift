import SMTPServer
import TollgatePolicy

/// The relay's decision point: department assignment by client network, the
/// department's route and size limit, then the pipeline of stages.
public struct RelayPolicyEvaluator: Sendable {
    public let setup: PolicySetup

    public init(setup: PolicySetup) {
        self.setup = setup
    }

    /// Whether sessions need to consult this evaluator at all.
    public var isActive: Bool { !setup.pipeline.isEmpty || !setup.policies.departments.isEmpty }

    /// Whether `phase` needs a decision: some stage decides it, or (at connect) a
    /// department may claim the client by its network.
    public func needsEvaluation(_ phase: PolicyPhase) -> Bool {
        if setup.pipeline.phases.contains(phase) { return true }
        return phase == .connect && setup.policies.departments.contains { !$0.networks.isEmpty }
    }

    public func evaluate(_ context: PolicyContext) async -> PolicyOutcome {
        var context = context
        var added = SessionFacts()
        if context.phase == .connect, context.facts.department == nil, let d = setup.policies.department(forClient: context.clientAddress) {
            added.department = d.info.name
            added.merge(setup.policies.facts(for: d.info.name))
        }
        context.facts.merge(added)
        var outcome = await setup.pipeline.evaluate(context)
        var facts = added
        facts.merge(outcome.facts)
        if let d = facts.department ?? context.facts.department, (context.facts.tags["department.applied"] ?? facts.tags["department.applied"]) != d {
            facts.merge(setup.policies.facts(for: d))
        }
        outcome.facts = facts
        return outcome
    }

    public func authenticate(_ credentials: AuthCredentials, context: PolicyContext) async -> (AuthOutcome, [PolicyTraceEntry]) {
        let (outcome, trace) = await setup.pipeline.authenticate(credentials, context: context)
        if case .success(var facts) = outcome, let d = facts.department {
            facts.merge(setup.policies.facts(for: d))
            return (.success(facts), trace)
        }
        return (outcome, trace)
    }
}
