import Foundation
import Logging
import TollgatePolicy
import TollgateConfiguration
import TollgatePipeline
import TollgateSpool
import TollgateSpoolPostgres
import TollgateDelivery
import TollgateMetrics

/// `tollgate explain`: runs the pipeline for an envelope as a dry run (stages are
/// told with ``PolicyContext/dryRun`` and must not count) and prints each stage's
/// verdict and reason, the department and the upstream chosen.
public enum ExplainCommand {
    /// What `explain` prints, and whether the envelope would be refused (the
    /// command then exits 1).
    public struct Result: Sendable {
        public var text: String
        public var refused: Bool
    }

    public static func run(configuration: TollgateConfiguration, from: String, to: [String], user: String?, client: String, tls: Bool) async throws -> Result {
        var logger = Logger(label: "tollgate.explain")
        logger.logLevel = .warning
        // With a cluster's database the counters are the live ones, read (never
        // changed); the embedded store's are in the running relay's memory.
        guard configuration.spool.postgres != nil else {
            var result = try await run(configuration: configuration, from: from, to: to, user: user, client: client, tls: tls, counters: MemoryCounters(), logger: logger)
            if configuration.stages.contains(where: { $0.use == "rate-limit" }) {
                result.text += "counters:   not the running relay's: with the embedded store they live in its memory, so the rate limits above count from 0 (its web console's Statistics page shows the live ones)\n"
            }
            return result
        }
        let spool = try await SpoolFactory.open(configuration.spool, node: NodeIdentity.current(named: configuration.spool.node).name, logger: logger)
        do {
            let result = try await run(configuration: configuration, from: from, to: to, user: user, client: client, tls: tls, counters: SpoolFactory.counters(for: spool), logger: logger)
            await (spool as? PostgresSpool)?.close()
            return result
        } catch {
            await (spool as? PostgresSpool)?.close()
            throw error
        }
    }

    static func run(
        configuration: TollgateConfiguration, from: String, to: [String], user: String?, client: String, tls: Bool, counters: any PolicyCounters, logger: Logger
    ) async throws -> Result {
        let setup = try await PipelineBuilder.build(configuration, logger: logger, metrics: nil, counters: counters)
        let pipeline = setup.pipeline
        let delegate = RelayPolicyEvaluator(setup: setup)
        var out = ""
        var context = PolicyContext(phase: .connect, sessionID: "explain", listener: configuration.listeners.first?.name ?? "relay", clientAddress: client, tls: tls, dryRun: true)
        var refused = false
        var department: DepartmentPolicies.Department?
        // The columns: phase, stage and verdict each end at the same place (10, 29, 39),
        // as in the lookup lines below and the README.
        func run(_ phase: PolicyPhase, saidAlready: Bool = false) async -> PolicyVerdict {
            context.phase = phase
            let outcome = await delegate.evaluate(context, applied: department?.info.name)
            context.facts.merge(outcome.facts)
            if let d = outcome.department { department = d }
            for entry in outcome.trace {
                out += "\(entry.phase.padding(toLength: 9, withPad: " ", startingAt: 0)) \(entry.stage.padding(toLength: 18, withPad: " ", startingAt: 0)) \(entry.shownVerdict.padding(toLength: max(9, entry.shownVerdict.count), withPad: " ", startingAt: 0)) \(entry.reason)\n"
            }
            if outcome.trace.isEmpty, !saidAlready {
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
            var looked = false
            for stage in pipeline.stages {
                guard let lookup = stage.stage as? any PolicyUserLookup else { continue }
                looked = true
                do {
                    if let facts = try await lookup.lookUpUser(user) {
                        out += "auth      \(stage.name.padding(toLength: 18, withPad: " ", startingAt: 0)) found     user \(user)\(facts.department.map { ", department \($0)" } ?? ""), may send as \(facts.allowedSenders.joined(separator: ", "))\n"
                        context.facts.merge(facts)
                        if let d = facts.department.flatMap(setup.policies.department(named:)) { department = d }
                    } else {
                        // A login as an unknown user fails: nothing after AUTH would run.
                        out += "auth      \(stage.name.padding(toLength: 18, withPad: " ", startingAt: 0)) unknown   user \(user) is unknown: a login as \(user) fails\n"
                        out += "          => 535 5.7.8 Authentication credentials invalid\n"
                        refused = true
                    }
                } catch {
                    out += "auth      \(stage.name.padding(toLength: 18, withPad: " ", startingAt: 0)) error     \(error)\n"
                    out += "          => 454 4.7.0 Temporary authentication failure\n"
                    refused = true
                }
                break
            }
            if !looked {
                out += "auth      (no stage looks users up: \(user) is taken as logged in, with no facts)\n"
            }
            // The lookup's line already stands for the auth phase.
            if !refused, await run(.auth, saidAlready: true).reply != nil { refused = true }
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
        return Result(text: out, refused: refused)
    }
}
