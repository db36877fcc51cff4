import TollgatePolicy

/// Refuses recipients in the configured domains (`settings: { domains: [...] }`).
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

    var phases: Set<PolicyPhase> { [.rcpt] }

    func evaluate(_ context: PolicyContext) async throws -> PolicyDecision {
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
