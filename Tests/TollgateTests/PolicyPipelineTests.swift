import Logging
import NIOPosix
import Testing
import TollgateApp
import TollgateConfiguration
import TollgatePipeline
import TollgateSpool
import TollgatePolicy
import TollgateMetrics

/// The pipeline runner: order, verdict folding, phases, time limits and `on_error`.
@Suite struct PolicyPipelineTests {
    struct Fixed: PolicyStage {
        var decision: PolicyDecision
        var phases: Set<PolicyPhase> = Set(PolicyPhase.allCases)
        func evaluate(_ context: PolicyContext) async throws -> PolicyDecision { decision }
    }

    struct Slow: PolicyStage {
        func evaluate(_ context: PolicyContext) async throws -> PolicyDecision {
            try await Task.sleep(for: .seconds(30))
            return .continue
        }
    }

    struct Failing: PolicyStage {
        struct Boom: Error {}
        func evaluate(_ context: PolicyContext) async throws -> PolicyDecision { throw Boom() }
        func authenticate(_ credentials: AuthCredentials, context: PolicyContext) async throws -> AuthOutcome { throw Boom() }
    }

    struct Verifier: PolicyStage {
        var phases: Set<PolicyPhase> { [] }
        func evaluate(_ context: PolicyContext) async throws -> PolicyDecision { .continue }
        func authenticate(_ credentials: AuthCredentials, context: PolicyContext) async throws -> AuthOutcome {
            credentials.password == "right" ? .success(SessionFacts(user: credentials.username, department: "finance")) : .failure(reason: "wrong password")
        }
    }

    func pipeline(_ stages: [(String, any PolicyStage, TollgateConfiguration.OnError)], timeout: Double = 5) -> PolicyPipeline {
        PolicyPipeline(
            stages: stages.map { PolicyPipeline.Stage(name: $0.0, stage: $0.1, timeout: timeout, onError: $0.2) },
            logger: Logger(label: "test")
        )
    }

    func context(_ phase: PolicyPhase) -> PolicyContext {
        PolicyContext(phase: phase, sessionID: "s", listener: "l", clientAddress: "127.0.0.1", sender: "a@example.com")
    }

    let reject = PolicyDecision(.reject(PolicyReply(code: 553, enhancedCode: "5.7.1", text: "no")), reason: "refused")

    @Test func endOfPipelineMeansAcceptAndFactsAccumulate() async {
        let p = pipeline([
            ("one", Fixed(decision: PolicyDecision(.continue, reason: "ok", facts: SessionFacts(tags: ["a": "1"]))), .defer),
            ("two", Fixed(decision: PolicyDecision(.continue, facts: SessionFacts(department: "sales"))), .defer),
        ])
        let outcome = await p.evaluate(context(.mail))
        #expect(outcome.verdict == .continue)
        #expect(outcome.facts.tags["a"] == "1" && outcome.facts.department == "sales")
        #expect(outcome.trace.map(\.stage) == ["one", "two"])
    }

    @Test func refusalStopsThePhaseAndAcceptStopsToo() async {
        let refused = await pipeline([("first", Fixed(decision: reject), .defer), ("never", Failing(), .reject)]).evaluate(context(.mail))
        #expect(refused.verdict.reply?.code == 553)
        #expect(refused.trace.map(\.stage) == ["first"])
        let accepted = await pipeline([("first", Fixed(decision: PolicyDecision(.accept)), .defer), ("never", Fixed(decision: reject), .defer)]).evaluate(context(.mail))
        #expect(accepted.verdict == .accept)
    }

    @Test func stagesAreOnlyAskedForTheirPhases() async {
        let p = pipeline([("rcpt-only", Fixed(decision: reject, phases: [.rcpt]), .defer)])
        #expect(p.phases == [.rcpt])
        #expect(await p.evaluate(context(.mail)).verdict == .continue)
        #expect(await p.evaluate(context(.rcpt)).verdict.reply?.code == 553)
    }

    @Test(arguments: [TollgateConfiguration.OnError.defer, .accept, .reject])
    func failureGivesTheOnErrorAnswer(_ onError: TollgateConfiguration.OnError) async {
        let outcome = await pipeline([("broken", Failing(), onError)]).evaluate(context(.mail))
        switch onError {
        case .defer: #expect(outcome.verdict.reply?.code == 451)
        case .accept: #expect(outcome.verdict == .accept)
        case .reject: #expect(outcome.verdict.reply?.code == 550)
        }
    }

    @Test func aStageOverItsTimeLimitIsAFailure() async {
        let started = ContinuousClock.now
        let outcome = await pipeline([("slow", Slow(), .defer)], timeout: 0.2).evaluate(context(.mail))
        #expect(outcome.verdict.reply?.code == 451)
        #expect(outcome.trace.first?.reason.contains("timed out") == true)
        #expect(ContinuousClock.now - started < .seconds(20))
    }

    @Test func authenticationNeverSucceedsOnError() async {
        let creds = AuthCredentials(username: "alice", password: "right", mechanism: "PLAIN")
        let (broken, _) = await pipeline([("broken", Failing(), .accept)]).authenticate(creds, context: context(.auth))
        guard case .temporaryFailure = broken else { Issue.record("\(broken)"); return }
        let (good, trace) = await pipeline([("ldap", Verifier(), .defer)]).authenticate(creds, context: context(.auth))
        guard case .success(let facts) = good else { Issue.record("\(good)"); return }
        #expect(facts.user == "alice")
        #expect(trace.first?.verdict == "accept")
        let (bad, _) = await pipeline([("ldap", Verifier(), .defer)]).authenticate(AuthCredentials(username: "alice", password: "x", mechanism: "PLAIN"), context: context(.auth))
        guard case .failure = bad else { Issue.record("\(bad)"); return }
        let (nobody, _) = await pipeline([("none", Fixed(decision: .continue), .defer)]).authenticate(creds, context: context(.auth))
        guard case .notHandled = nobody else { Issue.record("\(nobody)"); return }
    }
}

/// SPEC §8 shadow mode: a shadow stage's verdicts are recorded — trace, metric — and
/// never applied: the pipeline goes on as if it had said continue, its facts do not
/// reach the session, its failures and timeouts defer nothing, and a shadow verifier
/// decides no login.
@Suite struct ShadowModeTests {
    typealias Fixed = PolicyPipelineTests.Fixed
    let reject = PolicyDecision(.reject(PolicyReply(code: 553, enhancedCode: "5.7.1", text: "no")), reason: "not on the list", facts: SessionFacts(department: "shadowed"))

    func context(_ phase: PolicyPhase) -> PolicyContext {
        PolicyContext(phase: phase, sessionID: "s", listener: "l", clientAddress: "127.0.0.1", sender: "a@example.com")
    }

    /// A shadow stage's counters are its own: what it reserves and commits never shows
    /// in, nor adds to, the counter of the same name an enforced stage uses.
    @Test func aShadowStagesCountersAreItsOwn() async throws {
        let base = MemoryCounters()
        let shadow = ShadowCounters(base)
        let id = CounterID(name: "rate-limit/client/messages/127.0.0.1", window: 3600)
        guard case .reserved(let before) = try await base.reserve([CounterCharge(id, amount: 1, limit: 5)], sessionID: "enforced", now: 100) else {
            Issue.record("the enforced charge did not fit"); return
        }
        #expect(before[id] == 0)
        await base.commit(sessionID: "enforced", now: 100)
        // The shadow view starts from nothing, and its limit of 1 applies to its own count.
        guard case .reserved(let seen) = try await shadow.reserve([CounterCharge(id, amount: 1, limit: 1)], sessionID: "s", now: 101) else {
            Issue.record("the shadow charge did not fit"); return
        }
        #expect(seen[id] == 0)
        await base.commit(sessionID: "s", now: 101)
        #expect(try await base.usage([id], now: 102)[id] == 1, "the enforced count is unchanged by the shadow's")
        #expect(try await shadow.usage([id], now: 102)[id] == 1)
        guard case .exceeded(let over, let used) = try await shadow.reserve([CounterCharge(id, amount: 1, limit: 1)], sessionID: "s2", now: 103) else {
            Issue.record("the shadow's own limit did not hold"); return
        }
        #expect(over == id && used == 1)
    }

    @Test func aShadowRefusalIsRecordedAndTheEnforcedStagesDecide() async {
        let metrics = RelayMetrics()
        let p = PolicyPipeline(
            stages: [
                // Generous limits for the stages that answer at once: a loaded make test
                // once took over 5 s to schedule one (the cooperative pool has two threads).
                .init(name: "new-rule", stage: Fixed(decision: reject), timeout: 60, onError: .defer, mode: .shadow),
                .init(name: "failing", stage: PolicyPipelineTests.Failing(), timeout: 60, onError: .reject, mode: .shadow),
                .init(name: "slow", stage: PolicyPipelineTests.Slow(), timeout: 0.2, onError: .defer, mode: .shadow),
                .init(name: "enforced", stage: Fixed(decision: PolicyDecision(.continue, reason: "fine")), timeout: 60, onError: .defer),
            ],
            logger: Logger(label: "test"), metrics: metrics
        )
        let outcome = await p.evaluate(context(.mail))
        #expect(outcome.verdict == .continue)
        #expect(outcome.facts.department == nil, "a shadow stage's facts stay out")
        #expect(outcome.trace.map(\.stage) == ["new-rule", "failing", "slow", "enforced"])
        #expect(outcome.trace.map(\.shadow) == [true, true, true, false])
        #expect(outcome.trace.map(\.shownVerdict) == ["reject (shadow)", "reject (shadow)", "defer (shadow)", "continue"])
        #expect(outcome.trace[0].reason == "not on the list")
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(text.contains(#"tollgate_policy_shadow_decisions_total{stage="new-rule",phase="mail",verdict="reject"} 1"#), "\(text)")
        #expect(text.contains(#"tollgate_policy_shadow_decisions_total{stage="slow",phase="mail",verdict="defer"} 1"#))
        #expect(!text.contains(#"tollgate_policy_decisions_total{stage="new-rule""#), "shadow verdicts are not counted as decisions")
    }

    @Test func aShadowVerifierDecidesNoLogin() async {
        let p = PolicyPipeline(
            stages: [
                // Generous limits: the point is who decides, not how fast (a 5 s limit was
                // passed on a loaded 2-core run while other suites held every thread).
                .init(name: "new-directory", stage: PolicyPipelineTests.Verifier(), timeout: 60, onError: .defer, mode: .shadow),
                .init(name: "directory", stage: PolicyPipelineTests.Failing(), timeout: 60, onError: .defer),
            ],
            logger: Logger(label: "test")
        )
        let (outcome, trace) = await p.authenticate(AuthCredentials(username: "alice", password: "right", mechanism: "PLAIN"), context: context(.mail))
        guard case .temporaryFailure = outcome else {
            Issue.record("the enforced stage's failure decides, not the shadow's success: \(outcome)")
            return
        }
        #expect(trace.map(\.stage) == ["new-directory", "directory"])
        #expect(trace.first?.shownVerdict == "accept (shadow)")
    }
}
