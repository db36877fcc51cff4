import LDAPDirectory
import TollgatePolicy

#if canImport(Glibc)
import Glibc
#endif

/// The `ldap` policy stage: verifies AUTH PLAIN/LOGIN credentials against an LDAP
/// directory and attaches the user's addresses, groups and department as facts.
///
/// A login: refuse an empty password before anything else; consult the throttle
/// and the caches; search (service connection) for the one entry the escaped
/// `user_filter` matches; bind as that DN (user-bind connection); check
/// `required_group`. Any directory trouble — unreachable, slow, an error other
/// than invalidCredentials — is a temporary failure (`454 4.7.0`), never success.
/// Concurrent logins with the same credentials share one directory round trip.
public final class LDAPAuthStage: PolicyStage {
    let settings: LDAPStageSettings
    let directory: LDAPClient
    private let groupResolver: LDAPGroupResolver?
    private let host: any PolicyHost
    private let state: LDAPAuthState
    private let digester = CredentialDigester()

    /// Longest user name passed to the directory, in UTF-8 bytes.
    static let maxUsernameLength = 256

    init(settings: LDAPStageSettings, bindPassword: String?, host: any PolicyHost) {
        self.settings = settings
        self.host = host
        let directory = LDAPClient(configuration: settings.clientConfiguration(bindPassword: bindPassword))
        self.directory = directory
        self.groupResolver = settings.nestedGroups
            ? LDAPGroupResolver(directory: directory, base: settings.base, memberAttribute: settings.groupMemberAttribute)
            : nil
        var cache = LDAPAuthCache(
            positiveTTL: settings.cacheTTL,
            negativeTTL: settings.negativeCacheTTL,
            maxFailures: settings.maxFailuresPerUser,
            window: settings.failureWindow
        )
        cache.staleTTL = settings.staleTTL
        self.state = LDAPAuthState(cache: cache)
    }

    /// The stage only verifies credentials: it decides no phase.
    public var phases: Set<PolicyPhase> { [] }

    /// Authorization is the other stages' business: every phase continues.
    public func evaluate(_ context: PolicyContext) async throws -> PolicyDecision {
        .continue
    }

    public func authenticate(_ credentials: AuthCredentials, context: PolicyContext) async throws -> AuthOutcome {
        let user = credentials.username
        // RFC 4513 §5.1.2: an empty password would be an unauthenticated bind, which
        // some servers answer with success. Never send one.
        guard !credentials.password.isEmpty else {
            return .failure(reason: "empty password refused before any bind")
        }
        guard !user.isEmpty, user.utf8.count <= Self.maxUsernameLength else {
            return .failure(reason: "empty or overlong user name")
        }
        // Caches and the throttle are per name case-insensitively (uid, sAMAccountName
        // and mail all match case-insensitively), so ALICE and Alice are not extra guesses.
        let cacheKey = user.lowercased()
        let digest = digester.digest(username: cacheKey, password: credentials.password)

        switch await state.lookup(user: cacheKey, digest: digest, now: host.now()) {
        case .throttled:
            log(.warning, "LDAP login throttled", user: user, context: context, reason: "too many failed logins")
            return .temporaryFailure(reason: "too many failed logins for this user; try again later")
        case .hit(let facts):
            return .success(facts)
        case .negative(let reason):
            return .failure(reason: "\(reason) (cached)")
        case .miss:
            break
        }

        let dryRun = context.dryRun
        let key = LDAPAuthState.FlightKey(user: user, digest: digest, dryRun: dryRun)
        let password = credentials.password
        let outcome = await state.coalesce(key) { [self] in
            let verdict = await verify(user: user, password: password)
            if !dryRun { await record(verdict, user: cacheKey, digest: digest) }
            return verdict
        }
        await state.counted(outcome)
        switch outcome {
        case .success(let facts):
            log(.info, "LDAP login succeeded", user: user, context: context, reason: nil)
            return .success(facts)
        case .failure(let reason, _):
            log(.notice, "LDAP login failed", user: user, context: context, reason: reason)
            return .failure(reason: reason)
        case .unavailable(let reason):
            if let stale = await state.staleHit(user: cacheKey, digest: digest, now: host.now()) {
                // stale_ttl: the outage stays invisible to someone who was just working.
                log(.warning, "LDAP login served from an expired cache entry: directory unavailable", user: user,
                    context: context, reason: "\(reason); cache entry expired \(Int(stale.expiredFor)) s ago")
                return .success(stale.facts)
            }
            log(.warning, "LDAP directory unavailable", user: user, context: context, reason: reason)
            return .temporaryFailure(reason: reason)
        }
    }

    /// The cache's and the directory's counters for `/metrics`, as
    /// `tollgate_ldap_cache_hits_total` and so on (a login answered from the cache is
    /// a hit, one that asked the directory a miss).
    public func metrics() async -> [StageMetricSample] {
        let s = await state.statistics
        var samples: [StageMetricSample] = [
            .counter("cache_hits_total", "Logins answered from the login cache (a cached success)", s.hits),
            .counter("cache_negative_hits_total", "Logins refused from the negative cache (a cached failure)", s.negativeHits),
            .counter("cache_misses_total", "Logins that asked the directory (nothing cached for these credentials)", s.misses),
            .counter("cache_stale_hits_total", "Logins served from an expired cache entry while the directory was unavailable (stale_ttl)", s.staleHits),
            .counter("throttled_total", "Logins refused by the failure throttle before any directory request", s.throttled),
        ]
        for (result, count) in [("success", s.directorySuccesses), ("failure", s.directoryFailures), ("unavailable", s.directoryUnavailable)] {
            samples.append(.counter("directory_results_total", "Directory verdicts of the logins that asked it, by result", labels: ["result": result], count))
        }
        for (kind, count) in [("positive", s.entries.positive), ("negative", s.entries.negative), ("throttle", s.entries.throttled)] {
            samples.append(.gauge("cache_entries", "Entries in the login cache, by kind", labels: ["kind": kind], Double(count)))
        }
        return samples
    }

    /// Unbinds every connection and stops the worker threads.
    public func shutdown() async {
        await directory.shutdown()
    }

    // MARK: - Directory round trip

    private func verify(user: String, password: String) async -> LDAPAuthState.Verdict {
        let departments = host.departments()
        guard let filter = settings.filter(for: LDAPLoginName(user)) else {
            return .failure(reason: "login name in a form 'login_forms' does not accept", isGuess: true)
        }
        let attributes = LDAPUserFacts.attributes(settings: settings, departments: departments)
        let checks = settings.accountChecks
        let result = await directory.login(base: settings.base, filter: filter, attributes: attributes, password: password) {
            entry in
            // Wall-clock time: accountExpires is a date.
            checks ? LDAPAccountState.refusal(entry, now: Double(time(nil))) : nil
        }
        switch result {
        case .authenticated(let entry):
            var nested: [String] = []
            if let groupResolver {
                switch await groupResolver.groups(of: entry.dn, direct: entry.values(settings.groupAttribute)) {
                case .success(let groups): nested = groups
                case .failure(let error): return .unavailable(reason: "LDAP group lookup failed: \(error)")
                }
            }
            var delegated: [String] = []
            if let attribute = settings.delegateAttribute {
                let filter = "(\(attribute)=\(LDAPEscaping.filterValue(entry.dn)))"
                switch await directory.search(
                    base: settings.delegateBase ?? settings.base, filter: filter, attributes: settings.mailAttributes, sizeLimit: 500
                ) {
                case .success(let mailboxes):
                    for mailbox in mailboxes {
                        delegated += LDAPUserFacts.addresses(of: mailbox, attributes: settings.mailAttributes)
                    }
                case .failure(let error):
                    return .unavailable(reason: "LDAP delegate lookup failed: \(error)")
                }
            }
            let facts = LDAPUserFacts.facts(
                user: user, entry: entry, settings: settings, departments: departments, nestedGroups: nested, delegated: delegated
            )
            if let group = settings.requiredGroup, !LDAPUserFacts.isMember(of: group, groups: facts.groups) {
                return .failure(reason: "not a member of the required group", isGuess: false)
            }
            return .success(facts)
        case .refused(_, let reason):
            return .failure(reason: reason, isGuess: false)
        case .invalidCredentials(_, let problem?):
            return .failure(reason: problem, isGuess: false)
        case .invalidCredentials(_, nil):
            return .failure(reason: "wrong password", isGuess: true)
        case .noSuchUser:
            return .failure(reason: "unknown user", isGuess: true)
        case .ambiguous:
            return .failure(reason: "user filter matched more than one entry", isGuess: true)
        case .unavailable(let error):
            return .unavailable(reason: "LDAP directory unavailable: \(error)")
        }
    }

    private func record(_ verdict: LDAPAuthState.Verdict, user: String, digest: [UInt8]) async {
        let now = host.now()
        switch verdict {
        case .success(let facts):
            await state.recordSuccess(user: user, digest: digest, facts: facts, now: now)
        case .failure(let reason, let isGuess):
            await state.recordFailure(user: user, digest: digest, reason: reason, isGuess: isGuess, now: now)
        case .unavailable:
            break  // never cached: the next login asks again
        }
    }

    private func log(_ level: PolicyLogLevel, _ message: String, user: String, context: PolicyContext, reason: String?) {
        var metadata = ["ldap.user": user, "smtp.session.id": context.sessionID]
        if let reason { metadata["ldap.reason"] = reason }
        host.log(level, message, metadata: metadata)
    }
}

/// The mutable part of ``LDAPAuthStage``: the cache and the logins in flight.
actor LDAPAuthState {
    enum Verdict: Sendable {
        case success(SessionFacts)
        case failure(reason: String, isGuess: Bool)
        case unavailable(reason: String)
    }

    struct FlightKey: Hashable, Sendable {
        var user: String
        var digest: [UInt8]
        /// Dry runs (`tollgate explain`) record nothing, so they do not share with real logins.
        var dryRun: Bool
    }

    private var cache: LDAPAuthCache
    private var inFlight: [FlightKey: (id: UInt64, task: Task<Verdict, Never>)] = [:]
    private var lastFlightID: UInt64 = 0

    init(cache: LDAPAuthCache) {
        self.cache = cache
    }

    /// What ``LDAPAuthStage/metrics()`` exports.
    struct Statistics: Sendable {
        var hits = 0.0, negativeHits = 0.0, misses = 0.0, throttled = 0.0, staleHits = 0.0
        var directorySuccesses = 0.0, directoryFailures = 0.0, directoryUnavailable = 0.0
        var entries: (positive: Int, negative: Int, throttled: Int) = (0, 0, 0)
    }
    private var tally = Statistics()

    var statistics: Statistics {
        var s = tally
        s.entries = cache.counts
        return s
    }

    func lookup(user: String, digest: [UInt8], now: Double) -> LDAPAuthCache.Lookup {
        let found = cache.lookup(user: user, digest: digest, now: now)
        switch found {
        case .hit: tally.hits += 1
        case .negative: tally.negativeHits += 1
        case .miss: tally.misses += 1
        case .throttled: tally.throttled += 1
        }
        return found
    }

    /// Counts what the directory answered a login that missed the cache.
    func counted(_ verdict: Verdict) {
        switch verdict {
        case .success: tally.directorySuccesses += 1
        case .failure: tally.directoryFailures += 1
        case .unavailable: tally.directoryUnavailable += 1
        }
    }

    func recordSuccess(user: String, digest: [UInt8], facts: SessionFacts, now: Double) {
        cache.recordSuccess(user: user, digest: digest, facts: facts, now: now)
    }

    func recordFailure(user: String, digest: [UInt8], reason: String, isGuess: Bool, now: Double) {
        cache.recordFailure(user: user, digest: digest, reason: reason, isGuess: isGuess, now: now)
    }

    func staleHit(user: String, digest: [UInt8], now: Double) -> (facts: SessionFacts, expiredFor: Double)? {
        let stale = cache.staleHit(user: user, digest: digest, now: now)
        if stale != nil { tally.staleHits += 1 }
        return stale
    }

    /// Runs `operation` once for concurrent callers with the same key. A caller
    /// whose task is cancelled stops waiting at once (answering unavailable); the
    /// shared round trip goes on for the others.
    func coalesce(_ key: FlightKey, _ operation: @escaping @Sendable () async -> Verdict) async -> Verdict {
        let task: Task<Verdict, Never>
        if let running = inFlight[key] {
            task = running.task
        } else {
            lastFlightID += 1
            let id = lastFlightID
            // Runs isolated to this actor: the entry is removed before the result is
            // visible to anyone, so a later login never sees a stale answer.
            task = Task {
                let verdict = await operation()
                if inFlight[key]?.id == id { inFlight[key] = nil }
                return verdict
            }
            inFlight[key] = (id, task)
        }
        let result = LDAPOneShot<Verdict>()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Verdict, Never>) in
                result.install(continuation)
                Task { result.resolve(await task.value) }
            }
        } onCancel: {
            result.resolve(.unavailable(reason: "cancelled while waiting for the directory"))
        }
    }
}

extension LDAPAuthStage: PolicyUserLookup {
    /// The facts a login of `user` would attach, found with the service connection
    /// only (no bind as the user, nothing cached or counted): for `tollgate explain`.
    public func lookUpUser(_ user: String) async throws -> SessionFacts? {
        guard !user.isEmpty, user.utf8.count <= Self.maxUsernameLength else { return nil }
        let departments = host.departments()
        guard let filter = settings.filter(for: LDAPLoginName(user)) else { return nil }
        let attributes = LDAPUserFacts.attributes(settings: settings, departments: departments)
        switch await directory.search(base: settings.base, filter: filter, attributes: attributes, sizeLimit: 2) {
        case .success(let entries):
            guard entries.count == 1, let entry = entries.first else { return nil }
            var nested: [String] = []
            if let groupResolver, case .success(let groups) = await groupResolver.groups(
                of: entry.dn, direct: entry.values(settings.groupAttribute)
            ) {
                nested = groups
            }
            return LDAPUserFacts.facts(user: user, entry: entry, settings: settings, departments: departments, nestedGroups: nested)
        case .failure(let error):
            throw error
        }
    }
}
