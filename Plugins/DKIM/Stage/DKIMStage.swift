import DKIMKeys
import Synchronization
import TollgatePolicy

/// The `dkim` stage: signs each accepted message (RFC 6376) at the `data` phase,
/// after every other stage (``StagePlacement/last``), on the message as they left it.
///
/// The key is the sender's department's (its policy file's `dkim:` section, by
/// ``SessionFacts/department``) or the stage's default; of those, the first whose
/// domain aligns with the `From:` domain (the same domain or a parent of it, as
/// DMARC's relaxed alignment) signs. A message no key aligns with — or with no
/// single `From:` address — is passed unsigned, logged and counted, or refused
/// with `unaligned: refuse`. The DKIM-Signature field is inserted at the top.
public final class DKIMStage: PolicyStage {
    let settings: DKIMSettings
    let departments: [String: DKIMIdentity]
    let host: any PolicyHost
    private let counters = Mutex<(signed: Int, unaligned: Int)>((0, 0))

    public init(settings: DKIMSettings, departments: [String: DKIMIdentity], host: any PolicyHost) {
        self.settings = settings
        self.departments = departments
        self.host = host
    }

    public var phases: Set<PolicyPhase> { [.data] }
    public var placement: StagePlacement { .last }

    /// Messages signed and messages passed unsigned (unaligned) since the stage was made.
    public var counts: (signed: Int, unaligned: Int) { counters.withLock { $0 } }

    public func evaluate(_ context: PolicyContext) async throws -> PolicyDecision {
        guard context.phase == .data, let message = context.message else { return .continue }
        let fromDomains = message.fields.filter { $0.isNamed("from") }.map { Self.domain(ofFrom: $0.value) }
        let candidates = [context.facts.department.flatMap { departments[$0] }, settings.defaultIdentity].compactMap { $0 }
        guard fromDomains.count == 1, let fromDomain = fromDomains[0],
              let identity = candidates.first(where: { Self.aligns(fromDomain, with: $0.domain) })
        else {
            let what = fromDomains.count == 1 ? "From: \(fromDomains[0] ?? "without a domain")" : "\(fromDomains.count) From: fields"
            let count = counters.withLock { c -> Int in
                c.unaligned += 1
                return c.unaligned
            }
            host.log(.notice, "message not signed: no DKIM key aligns with its From: domain", metadata: [
                "smtp.session.id": context.sessionID, "dkim.from": what, "dkim.department": context.facts.department ?? "-",
                "dkim.unaligned.count": "\(count)",
            ])
            if settings.refuseUnaligned {
                return PolicyDecision(
                    .reject(PolicyReply(code: 550, enhancedCode: "5.7.1", text: "This relay does not sign for the From: domain of this message")),
                    reason: "unaligned \(what); unaligned: refuse"
                )
            }
            return PolicyDecision(.continue, reason: "not signed: no key aligns with \(what)", facts: SessionFacts(tags: ["dkim": "unsigned"]))
        }
        let signer = DKIMSigner(key: identity.key, domain: identity.domain, selector: identity.selector, headers: settings.headers, header: settings.header, body: settings.body)
        let value = try signer.signatureValue(for: message, time: host.now())
        counters.withLock { $0.signed += 1 }
        return PolicyDecision(
            .continue,
            reason: "signed d=\(identity.domain) s=\(identity.selector) a=\(identity.key.algorithm)",
            facts: SessionFacts(tags: ["dkim": "d=\(identity.domain) s=\(identity.selector)"]),
            changes: [.insertHeader(index: 0, name: "DKIM-Signature", value: String(value.dropFirst()))]
        )
    }

    /// Whether `from` is `domain` or below it (DMARC relaxed alignment, RFC 7489 §3.1.1).
    static func aligns(_ from: String, with domain: String) -> Bool {
        from == domain || from.hasSuffix("." + domain)
    }

    /// The domain of the (first) address of a From: value, lower-cased:
    /// `"Name" <user@Example.COM>` and `user@example.com (comment)` give `example.com`.
    static func domain(ofFrom value: String) -> String? {
        var address = Substring(value)
        if let open = value.lastIndex(of: "<"), let close = value[open...].firstIndex(of: ">") {
            address = value[value.index(after: open)..<close]
        } else if let space = address.firstIndex(where: { $0 == " " || $0 == "(" || $0 == "," }) {
            address = address[..<space]
        }
        guard let at = address.lastIndex(of: "@") else { return nil }
        let domain = address[address.index(after: at)...].trimming(" \t>.").lowercased()
        return domain.isEmpty ? nil : domain
    }
}

extension StringProtocol {
    func trimming(_ set: String) -> String {
        let drop = Set(set)
        var s = Substring(self)
        while let f = s.first, drop.contains(f) { s = s.dropFirst() }
        while let l = s.last, drop.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

/// Makes ``DKIMStage``s; the object `tollgate_plugin_create` hands to the relay.
/// Keys are read at load (and so on every reload); a key that cannot be used is a
/// located error for `tollgate check`.
public final class DKIMFactory: PolicyStageFactory {
    public let name = "dkim"

    public init() {}

    public func validate(settings: PolicySettings, host: any PolicyHost) -> [PolicyDiagnostic] {
        read(settings, host).diagnostics
    }

    public func makeStage(settings: PolicySettings, host: any PolicyHost) async throws -> any PolicyStage {
        let (parsed, departments, diagnostics) = read(settings, host)
        if let first = diagnostics.first { throw first }
        guard let parsed else { throw PolicyDiagnostic(settings.location, "invalid dkim settings") }
        return DKIMStage(settings: parsed, departments: departments, host: host)
    }

    func read(_ settings: PolicySettings, _ host: any PolicyHost) -> (settings: DKIMSettings?, departments: [String: DKIMIdentity], diagnostics: [PolicyDiagnostic]) {
        var (parsed, diagnostics) = DKIMSettings.parse(settings)
        var departments: [String: DKIMIdentity] = [:]
        for department in host.departments() {
            guard let section = host.departmentSettings(department.name) else { continue }
            let (identity, problems) = DKIMSettings.parseDepartment(section, department: department.name)
            diagnostics += problems
            if let identity { departments[department.name] = identity }
        }
        if parsed != nil, parsed?.defaultIdentity == nil, departments.isEmpty {
            diagnostics.append(PolicyDiagnostic(settings.location, "dkim needs a key: domain, selector and key here, or in a department's dkim: section"))
            parsed = nil
        }
        return (parsed, departments, diagnostics)
    }
}
