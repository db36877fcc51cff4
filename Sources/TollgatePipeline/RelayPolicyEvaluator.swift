import TollgatePolicy
import TollgateConfiguration
import TollgateMetrics
import SMTPCore

/// The relay's decision point: department assignment by client network, then the
/// pipeline of stages, then the department the session now belongs to.
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

    /// Runs the pipeline for `context`. `applied` is the department whose route and
    /// size already apply; the outcome names the department when it changes.
    public func evaluate(_ context: PolicyContext, applied: String? = nil) async -> PolicyOutcome {
        var context = context
        var added = SessionFacts()
        if context.phase == .connect, context.facts.department == nil, let d = setup.policies.department(forClient: context.clientAddress) {
            added.department = d.info.name
        }
        context.facts.merge(added)
        var outcome = await setup.pipeline.evaluate(context)
        added.merge(outcome.facts)
        outcome.facts = added
        outcome.department = department(added.department ?? context.facts.department, replacing: applied)
        return outcome
    }

    /// Verifies credentials; on success, the user's department (if any) is returned too.
    public func authenticate(_ credentials: AuthCredentials, context: PolicyContext, applied: String? = nil) async -> (AuthOutcome, [PolicyTraceEntry], DepartmentPolicies.Department?) {
        let (outcome, trace) = await setup.pipeline.authenticate(credentials, context: context)
        if case .success(let facts) = outcome {
            return (outcome, trace, department(facts.department, replacing: applied))
        }
        return (outcome, trace, nil)
    }

    private func department(_ name: String?, replacing applied: String?) -> DepartmentPolicies.Department? {
        guard let name, name != applied else { return nil }
        return setup.policies.department(named: name)
    }
}
