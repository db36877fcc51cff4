import Synchronization
import TollgatePolicy

/// A client of a Postfix SMTP access policy server (postfwd, policyd-rate-limit, …):
/// one request per configured phase, the answer mapped as Postfix maps it (access(5)).
public final class PostfixPolicyStage: PolicyStage {
    public let settings: PostfixPolicySettings
    public let pool: PolicyConnectionPool
    private let host: any PolicyHost
    /// Per session: the number of the current transaction (for `instance`).
    private let transactions = Mutex<[String: Int]>([:])
    private let cache = Mutex<[String: (expires: Double, action: String)]>([:])
    private let instancePrefix: String

    public init(settings: PostfixPolicySettings, host: any PolicyHost) {
        self.settings = settings
        self.host = host
        self.pool = PolicyConnectionPool(address: settings.server, size: settings.connections, timeout: settings.timeout)
        // Differs between stage instances (reloads), so instances are not reused.
        self.instancePrefix = String(UInt64(host.now() * 1000) & 0xFFFFFF, radix: 16)
    }

    /// The configured phases, and always `mail`: a MAIL starts a new transaction,
    /// hence a new `instance`, even when no request is sent at MAIL. (A `PREPEND`
    /// asked at MAIL/RCPT is applied by the relay whether or not a stage decides `data`.)
    public var phases: Set<PolicyPhase> { settings.phases.union([.mail]) }

    /// `instance`: the same for every request of one transaction (MAIL to end of
    /// message), different for the next one, as Postfix's.
    func instance(for context: PolicyContext) -> String {
        let number = transactions.withLock { table -> Int in
            if context.phase == .mail || table[context.sessionID] == nil {
                table[context.sessionID, default: 0] += 1
            }
            return table[context.sessionID]!
        }
        return "\(instancePrefix).\(context.sessionID).\(number)"
    }

    public func evaluate(_ context: PolicyContext) async throws -> PolicyDecision {
        let instance = context.dryRun ? "explain" : instance(for: context)
        guard settings.phases.contains(context.phase) else {
            return PolicyDecision(.continue, reason: "no request at \(context.phase.rawValue)")
        }
        let attributes = PolicyProtocol.attributes(for: context, instance: instance, policyContext: settings.policyContext)
        let request = PolicyProtocol.encode(attributes)
        let cacheKey = settings.cacheTTL > 0 ? String(decoding: PolicyProtocol.encode(attributes.filter { $0.0 != "instance" }), as: UTF8.self) : nil
        var answer: String?
        var cached = false
        if let cacheKey {
            let now = host.now()
            answer = cache.withLock { table in
                guard let hit = table[cacheKey], hit.expires > now else { return nil }
                return hit.action
            }
            cached = answer != nil
        }
        if answer == nil {
            let lines = try await pool.send(request)
            guard let action = PolicyProtocol.action(inAnswer: lines) else {
                throw PolicyServerError.garbage("no action= in the answer \(lines.joined(separator: "\\n").debugDescription)")
            }
            answer = action
        }
        let action = answer!
        let parsed: PolicyAction
        do {
            parsed = try PolicyAction.parse(action)
        } catch {
            throw PolicyServerError.garbage(error.description)
        }
        if let cacheKey, !cached {
            let expires = host.now() + settings.cacheTTL
            cache.withLock { table in
                if table.count >= 10_000 { table.removeAll() }
                table[cacheKey] = (expires, action)
            }
        }
        let said = "\(settings.server) said \(action.debugDescription)\(cached ? " (cached)" : "")"
        return try decision(parsed, said: said, context: context)
    }

    func decision(_ action: PolicyAction, said: String, context: PolicyContext) throws -> PolicyDecision {
        let meta = ["policy.server": "\(settings.server)", "session": context.sessionID, "phase": context.phase.rawValue]
        switch action {
        case .reject(let reply): return PolicyDecision(.reject(reply), reason: said)
        case .defer(let reply): return PolicyDecision(.defer(reply), reason: said)
        case .continue: return PolicyDecision(.continue, reason: said)
        case .prepend(let name, let value):
            // Postfix's PREPEND puts the header above the others.
            return PolicyDecision(.continue, reason: said, changes: [.insertHeader(index: 0, name: name, value: value)])
        case .hold(let text):
            return PolicyDecision(.continue, reason: said, disposition: .hold(reason: text.isEmpty ? "held by policy server \(settings.server)" : text))
        case .discard(let text):
            host.log(.notice, "policy server asked to discard the message", metadata: meta.merging(["policy.text": text]) { $1 })
            return PolicyDecision(.continue, reason: said, disposition: .discard(reason: text.isEmpty ? "discarded by policy server \(settings.server)" : text))
        case .warn(let text):
            host.log(.warning, "policy server warning: \(text)", metadata: meta)
            return PolicyDecision(.continue, reason: said)
        case .ignored(let keyword, let text):
            host.log(keyword == "INFO" ? .info : .warning, "policy server answer \(keyword) is not supported by Tollgate; ignored", metadata: meta.merging(["policy.text": text]) { $1 })
            return PolicyDecision(.continue, reason: said + " (ignored)")
        case .unsupported(let keyword):
            host.log(.warning, "policy server answer \(keyword) is not supported by Tollgate; the stage's on_error applies", metadata: meta)
            throw PolicyServerError.garbage("\(said): \(keyword) is not supported")
        }
    }

    public func sessionClosed(sessionID: String) async {
        _ = transactions.withLock { $0.removeValue(forKey: sessionID) }
    }

    public func shutdown() async {
        pool.close()
    }
}
