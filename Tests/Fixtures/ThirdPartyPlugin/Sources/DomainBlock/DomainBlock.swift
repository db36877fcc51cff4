import Synchronization
import TollgatePolicy

/// Refuses recipients in the configured domains (`settings: { domains: [...] }`), and
/// at `data` marks the message with an `X-Domain-Block: checked` header field (a
/// message change, ABI 2) and drops any `X-Internal` field. To show the rest of ABI 2
/// to plugin authors (and to test the relay's side of it): a recipient whose local
/// part is `hold` holds the message in the queue, `discard` drops it, `prepend` adds a
/// header field at RCPT that the relay applies at DATA; a message with an
/// `X-Redirect: ADDRESS` field goes to ADDRESS instead of its recipients, from
/// `redirector@` the sender's domain. ABI 3: the stage exports a gauge of its
/// configured domains to the relay's `/metrics` (`tollgate_domain_block_domains`).
/// ABI 4: the message is marked with the queue id it will be stored under
/// (`X-Domain-Block-Queue-ID`, from ``PolicyContext/queueID``).
final class DomainBlockFactory: PolicyStageFactory {
    let name = "domain-block"

    func validate(settings: PolicySettings, host: any PolicyHost) -> [PolicyDiagnostic] {
        var problems = settings.unknownKeys(allowed: ["domains"])
        if settings["domains"]?.list == nil {
            problems.append(PolicyDiagnostic(settings.location, "domain-block needs domains: [list]"))
        }
        return problems
    }

    func makeStage(settings: PolicySettings, host: any PolicyHost) async throws -> any PolicyStage {
        DomainBlockStage(domains: Set((settings["domains"]?.list ?? []).compactMap { $0.string?.lowercased() }))
    }
}

struct DomainBlockStage: PolicyStage {
    let domains: Set<String>
    /// Set by ``shutdown()``: a stage must not be used after it (a real one would have
    /// closed its connections), so this one says so, and the relay's tests can see
    /// that it never is.
    let stopped = StopFlag()

    final class StopFlag: Sendable {
        private let value = Mutex(false)
        var isSet: Bool { value.withLock { $0 } }
        func set() { value.withLock { $0 = true } }
    }

    struct UsedAfterShutdown: Error, CustomStringConvertible {
        var description: String { "domain-block was used after its shutdown()" }
    }

    func shutdown() async { stopped.set() }

    var phases: Set<PolicyPhase> { [.rcpt, .data] }

    func metrics() async -> [StageMetricSample] {
        [.gauge("domains", "Domains this stage refuses", Double(domains.count))]
    }

    func evaluate(_ context: PolicyContext) async throws -> PolicyDecision {
        if stopped.isSet { throw UsedAfterShutdown() }
        if context.phase == .data, let message = context.message {
            var changes: [MessageChange] = [.addHeader(name: "X-Domain-Block", value: "checked")]
            if let queueID = context.queueID { changes.append(.addHeader(name: "X-Domain-Block-Queue-ID", value: queueID)) }
            let internalFields = message.fields.count(where: { $0.isNamed("X-Internal") })
            // Remove from the last so the occurrence numbers stay valid.
            for n in stride(from: internalFields, through: 1, by: -1) { changes.append(.removeHeader(name: "X-Internal", occurrence: n)) }
            var envelope: [EnvelopeChange] = []
            if let target = message.header("X-Redirect")?.split(separator: " ").first.map(String.init) {
                let domain = context.sender.flatMap { $0.split(separator: "@").last.map(String.init) } ?? "localhost"
                envelope = context.recipients.map { .removeRecipient($0) } + [.addRecipient(target), .changeSender("redirector@\(domain)")]
            }
            return PolicyDecision(.continue, reason: "marked", changes: changes, envelopeChanges: envelope)
        }
        guard context.phase == .rcpt, let rcpt = context.recipient, let at = rcpt.lastIndex(of: "@") else { return .continue }
        let domain = rcpt[rcpt.index(after: at)...].lowercased()
        if domains.contains(domain) {
            return PolicyDecision(.reject(PolicyReply(code: 550, enhancedCode: "5.7.1", text: "Recipient domain \(domain) is blocked")), reason: "domain \(domain) blocked")
        }
        let facts = SessionFacts(tags: ["domain-block": "checked"])
        switch rcpt[..<at].lowercased() {
        case "hold": return PolicyDecision(.continue, reason: "domain \(domain) allowed", facts: facts, disposition: .hold(reason: "asked by \(rcpt)"))
        case "discard": return PolicyDecision(.continue, reason: "domain \(domain) allowed", facts: facts, disposition: .discard(reason: "asked by \(rcpt)"))
        case "prepend": return PolicyDecision(.continue, reason: "domain \(domain) allowed", facts: facts, changes: [.addHeader(name: "X-Prepended", value: "at RCPT for \(rcpt)")])
        default: return PolicyDecision(.continue, reason: "domain \(domain) allowed", facts: facts)
        }
    }
}

@_cdecl("tollgate_plugin_handshake")
public func tollgatePluginHandshake(_ out: UnsafeMutableRawPointer) {
    TollgatePluginHandshake.current.write(to: out)
}

@_cdecl("tollgate_plugin_create")
public func tollgatePluginCreate() -> UnsafeMutableRawPointer {
    Unmanaged.passRetained(DomainBlockFactory() as AnyObject).toOpaque()
}
