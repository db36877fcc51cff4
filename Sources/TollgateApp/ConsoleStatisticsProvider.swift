import NIOConcurrencyHelpers
import TollgateConsole
import TollgatePipeline
import TollgatePolicy

/// The console's statistics: the event tally of the last hour, and for its busiest
/// users and departments what the `rate-limit` stages would say of one more message —
/// a dry run, as `tollgate explain` does it, which counts nothing.
struct ConsoleStatisticsProvider: ConsoleStatistics {
    let tally: EventTally
    let policy: NIOLockedValueBox<PolicySetup>

    func snapshot(now: Double) async -> ConsoleStatisticsSnapshot {
        var snapshot = tally.snapshot(now: now)
        let stages = policy.withLockedValue { $0 }.pipeline.stages.filter { $0.name == "rate-limit" && $0.phases.contains(.mail) }
        guard !stages.isEmpty else { return snapshot }
        for someone in snapshot.busiest {
            let context = PolicyContext(
                phase: .mail, sessionID: "console", listener: "console", clientAddress: someone.client, authenticatedUser: someone.user,
                sender: someone.sender, facts: SessionFacts(user: someone.user, department: someone.department), dryRun: true
            )
            var said: [String] = []
            for stage in stages {
                do {
                    let decision = try await stage.stage.evaluate(context)
                    said.append(decision.reason)
                } catch {
                    said.append("cannot tell: \(error)")
                }
            }
            let subject = [someone.user.map { "user \($0)" }, someone.department.map { "department \($0)" }, "sender \(someone.sender.isEmpty ? "<>" : someone.sender)"].compactMap { $0 }.joined(separator: ", ")
            snapshot.limits.append(.init(subject: subject, text: said.joined(separator: "; ")))
        }
        return snapshot
    }
}
