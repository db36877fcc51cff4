import TollgatePolicy

/// The `sender-allowlist` stage: who may use which envelope sender (and, optionally,
/// which `From:` header).
///
/// At `mail`:
/// - **Authenticated sessions** (``PolicyContext/authenticatedUser`` set) may use their
///   own addresses (``SessionFacts/allowedSenders``), the patterns of their department's
///   `sender-allowlist:` section (department = ``SessionFacts/department``) and the
///   stage's `senders` patterns; anything else is `553 5.7.1`.
/// - **Unauthenticated sessions** relay only from `networks` (the stage's plus the
///   department's) and only with a sender matching `unauthenticated_senders` (the stage's
///   plus the department's); otherwise `553 5.7.1`, or `530 5.7.0` outside the networks
///   under `require_auth_outside_networks`.
/// - **The null sender** `<>` needs `allow_null_sender` (stage or department) and, when
///   unauthenticated, a client inside the networks.
///
/// At `data`, with `check_header_from`, every address of every `From:` header must pass
/// the same rule (`553 5.7.1` otherwise; a message without a `From:` address is refused
/// too). Every other phase continues.
///
/// The stage holds no mutable state; department sections are read from the host on
/// each decision, so it always sees the policies the host currently has.
public struct SenderAllowlistStage: PolicyStage {
    let settings: SenderAllowlistSettings
    let host: any PolicyHost

    public init(settings: SenderAllowlistSettings, host: any PolicyHost) {
        self.settings = settings
        self.host = host
    }

    /// The envelope sender at `mail`; the `From:` header at `data` when configured.
    public var phases: Set<PolicyPhase> { settings.checkHeaderFrom ? [.mail, .data] : [.mail] }

    public func evaluate(_ context: PolicyContext) async throws -> PolicyDecision {
        switch context.phase {
        case .mail:
            guard let sender = context.sender else {
                return PolicyDecision(.continue, reason: "no envelope sender yet")
            }
            return decide(address: sender, context: context, what: "sender")
        case .data:
            guard settings.checkHeaderFrom else { return PolicyDecision(.continue, reason: "From: header not checked") }
            return decideHeaderFrom(context)
        default:
            return .continue
        }
    }

    // MARK: - Rules

    enum Outcome: Equatable {
        case allowed(String)
        case refused(PolicyReply, String)
    }

    func decide(address: String, context: PolicyContext, what: String) -> PolicyDecision {
        switch check(address: address, context: context, what: what) {
        case .allowed(let reason): return PolicyDecision(.continue, reason: reason)
        case .refused(let reply, let reason): return PolicyDecision(.reject(reply), reason: reason)
        }
    }

    func decideHeaderFrom(_ context: PolicyContext) -> PolicyDecision {
        let values = context.headers.filter { $0.name.lowercased() == "from" }.map(\.value)
        let addresses = values.flatMap(HeaderAddresses.parse)
        guard !addresses.isEmpty else {
            return PolicyDecision(
                .reject(PolicyReply(code: 553, enhancedCode: "5.7.1", text: "Message rejected: no sender address in the From: header")),
                reason: values.isEmpty ? "no From: header" : "no address in the From: header"
            )
        }
        var reasons: [String] = []
        for address in addresses {
            switch check(address: address, context: context, what: "From: header address") {
            case .allowed(let reason):
                reasons.append(reason)
            case .refused(let reply, let reason):
                var headerReply = reply
                if reply.code == 553 {
                    headerReply.text = reply.text.replacingPrefix("Sender address rejected", with: "From: header address rejected")
                }
                return PolicyDecision(.reject(headerReply), reason: reason)
            }
        }
        return PolicyDecision(.continue, reason: reasons.joined(separator: "; "))
    }

    /// The rule for one address (`""` is the null sender), shared by the envelope and `From:`.
    func check(address rawAddress: String, context: PolicyContext, what: String) -> Outcome {
        let address = rawAddress.trimmingSpaces.lowercased()
        let department = context.facts.department
        let departmentPolicy = department.map { self.departmentPolicy(for: $0) } ?? DepartmentSenderPolicy()
        let networks = settings.networks + departmentPolicy.networks
        let authenticated = context.authenticatedUser != nil
        let user = context.facts.user ?? context.authenticatedUser ?? ""
        let departmentText = department.map { " (department \($0))" } ?? " (no department)"

        // Unauthenticated: the client network first.
        var clientNetwork: CIDRNetwork?
        if !authenticated {
            clientNetwork = networks.first { $0.contains(address: context.clientAddress) }
            if clientNetwork == nil {
                if settings.requireAuthOutsideNetworks {
                    return .refused(
                        PolicyReply(code: 530, enhancedCode: "5.7.0", text: "Authentication required"),
                        "unauthenticated client \(context.clientAddress) outside the relay networks"
                    )
                }
                return .refused(
                    PolicyReply(
                        code: 553, enhancedCode: "5.7.1",
                        text: "Sender address rejected: relaying from \(context.clientAddress) not permitted without authentication"
                    ),
                    "unauthenticated client \(context.clientAddress) outside the relay networks"
                )
            }
        }

        if address.isEmpty {
            let allowed = departmentPolicy.allowNullSender == true || settings.allowNullSender
            guard allowed else {
                return .refused(
                    PolicyReply(code: 553, enhancedCode: "5.7.1", text: "Sender address rejected: null sender not permitted"),
                    "null sender not allowed\(departmentText)"
                )
            }
            let source = departmentPolicy.allowNullSender == true ? "department \(department ?? "")" : "stage settings"
            if let clientNetwork {
                return .allowed("null sender allowed by \(source) from network \(clientNetwork)")
            }
            return .allowed("null sender allowed by \(source) for user \(user)")
        }

        if authenticated {
            if context.facts.allowedSenders.contains(where: { $0.lowercased() == address }) {
                return .allowed("\(what) \(address) owned by user \(user)")
            }
            if let department, let pattern = departmentPolicy.senders.first(where: { $0.matches(address) }) {
                return .allowed("\(what) \(address) allowed for department \(department) by pattern \(pattern)")
            }
            if let pattern = settings.senders.first(where: { $0.matches(address) }) {
                return .allowed("\(what) \(address) allowed for all users by pattern \(pattern)")
            }
            return .refused(
                PolicyReply(code: 553, enhancedCode: "5.7.1", text: "Sender address rejected: not owned by user \(user)"),
                "\(what) \(address) not owned by user \(user)\(departmentText)"
            )
        }

        let network = clientNetwork.map(\.text) ?? ""
        let patterns = settings.unauthenticatedSenders + departmentPolicy.unauthenticatedSenders
        if let pattern = patterns.first(where: { $0.matches(address) }) {
            return .allowed("unauthenticated client \(context.clientAddress) in \(network), \(what) \(address) matches \(pattern)")
        }
        return .refused(
            PolicyReply(
                code: 553, enhancedCode: "5.7.1",
                text: "Sender address rejected: \(address) not permitted without authentication"
            ),
            "unauthenticated client \(context.clientAddress) in \(network), \(what) \(address) matches no unauthenticated_senders pattern"
        )
    }

    /// The department's section as the host has it now; invalid entries (reported at
    /// load and by `tollgate check`) are left out, which only ever allows less.
    func departmentPolicy(for department: String) -> DepartmentSenderPolicy {
        guard let section = host.departmentSettings(department) else { return DepartmentSenderPolicy() }
        return DepartmentSenderPolicy.parse(section, department: department).0
    }
}

extension String {
    func replacingPrefix(_ prefix: String, with replacement: String) -> String {
        hasPrefix(prefix) ? replacement + dropFirst(prefix.count) : self
    }
}
