import TollgatePolicy

/// Refuses recipients in the configured domains (`settings: { domains: [...] }`), and
/// at `data` marks the message with an `X-Domain-Block: checked` header field (a
/// message change, ABI 2) and drops any `X-Internal` field.
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

    var phases: Set<PolicyPhase> { [.rcpt, .data] }

    func evaluate(_ context: PolicyContext) async throws -> PolicyDecision {
        if context.phase == .data, let message = context.message {
            var changes: [MessageChange] = [.addHeader(name: "X-Domain-Block", value: "checked")]
            let internalFields = message.fields.count(where: { $0.isNamed("X-Internal") })
            // Remove from the last so the occurrence numbers stay valid.
            for n in stride(from: internalFields, through: 1, by: -1) { changes.append(.removeHeader(name: "X-Internal", occurrence: n)) }
            return PolicyDecision(.continue, reason: "marked", changes: changes)
        }
        guard context.phase == .rcpt, let rcpt = context.recipient, let at = rcpt.lastIndex(of: "@") else { return .continue }
        let domain = rcpt[rcpt.index(after: at)...].lowercased()
        if domains.contains(domain) {
            return PolicyDecision(.reject(PolicyReply(code: 550, enhancedCode: "5.7.1", text: "Recipient domain \(domain) is blocked")), reason: "domain \(domain) blocked")
        }
        return PolicyDecision(.continue, reason: "domain \(domain) allowed", facts: SessionFacts(tags: ["domain-block": "checked"]))
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
