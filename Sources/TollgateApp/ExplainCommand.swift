import Foundation
import Logging
import TollgatePolicy
import TollgateConfiguration
import TollgatePipeline
import TollgateSpool
import TollgateDelivery
import TollgateMetrics

/// `tollgate explain`: runs the pipeline for an envelope as a dry run (stages are
/// told with ``PolicyContext/dryRun`` and must not count) and prints each stage's
/// verdict and reason, the department and the upstream chosen.
public enum ExplainCommand {
    public static func run(configuration: TollgateConfiguration, from: String, to: [String], user: String?, client: String, tls: Bool) async throws -> String {
        var logger = Logger(label: "tollgate.explain")
        logger.logLevel = .warning
        let setup = try await PipelineBuilder.build(configuration, logger: logger, metrics: nil)
        let pipeline = setup.pipeline
        let delegate = RelayPolicyEvaluator(setup: setup)
        var out = ""
        var context = PolicyContext(phase: .connect, sessionID: "explain", listener: configuration.listeners.first?.name ?? "relay", clientAddress: client, tls: tls, dryRun: true)
        var refused = false
        var department: DepartmentPolicies.Department?
        func run(_ phase: PolicyPhase) async -> PolicyVerdict {
            context.phase = phase
            let outcome = await delegate.evaluate(context, applied: department?.info.name)
            context.facts.merge(outcome.facts)
            if let d = outcome.department { department = d }
            for entry in outcome.trace {
                out += "\(entry.phase.padding(toLength: 9, withPad: " ", startingAt: 0)) \(entry.stage.padding(toLength: 18, withPad: " ", startingAt: 0)) \(entry.shownVerdict.padding(toLength: max(10, entry.shownVerdict.count), withPad: " ", startingAt: 0)) \(entry.reason)\n"
            }
            if outcome.trace.isEmpty {
                out += "\(phase.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) (no stages)\n"
            }
            if let reply = outcome.verdict.reply {
                out += "          => \(reply)\n"
            }
            return outcome.verdict
        }
        for phase in [PolicyPhase.connect, .helo] where !refused {
            if phase == .helo { context.helo = "explain.invalid" }
            if await run(phase).reply != nil { refused = true }
        }
        if !refused, let user {
            context.authenticatedUser = user
            context.facts.user = user
            // What a login would attach, from the first stage that can look users up.
            for stage in pipeline.stages {
                guard let lookup = stage.stage as? any PolicyUserLookup else { continue }
                do {
                    if let facts = try await lookup.lookUpUser(user) {
                        out += "auth      \(stage.name.padding(toLength: 18, withPad: " ", startingAt: 0)) found     user \(user)\(facts.department.map { ", department \($0)" } ?? ""), may send as \(facts.allowedSenders.joined(separator: ", "))\n"
                        context.facts.merge(facts)
                        if let d = facts.department.flatMap(setup.policies.department(named:)) { department = d }
                    } else {
                        out += "auth      \(stage.name.padding(toLength: 18, withPad: " ", startingAt: 0)) unknown   no such user \(user)\n"
                    }
                } catch {
                    out += "auth      \(stage.name.padding(toLength: 18, withPad: " ", startingAt: 0)) error     \(error)\n"
                }
                break
            }
            if await run(.auth).reply != nil { refused = true }
        }
        if !refused {
            context.sender = from
            if await run(.mail).reply != nil { refused = true }
        }
        var accepted: [String] = []
        if !refused {
            for rcpt in to {
                context.recipient = rcpt
                if await run(.rcpt).reply == nil { accepted.append(rcpt) }
            }
            context.recipient = nil
            context.recipients = accepted
            if accepted.isEmpty { refused = true }
        }
        if !refused {
            context.messageSize = 0
            if await run(.data).reply != nil { refused = true }
        }
        out += "department: \(context.facts.department ?? "(none)")\n"
        let upstream = department?.upstream ?? configuration.delivery.defaultUpstream ?? "(none)"
        out += "upstream:   \(upstream)\n"
        out += "result:     \(refused ? "refused" : "accepted for \(accepted.joined(separator: ", "))")\n"
        await pipeline.shutdown()
        return out
    }
}
