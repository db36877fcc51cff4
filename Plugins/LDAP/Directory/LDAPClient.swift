import CLDAP

#if canImport(Glibc)
import Glibc
#endif

/// An LDAP directory reached through the system's OpenLDAP library.
///
/// Every libldap call blocks, so each request runs on one of `poolSize` worker
/// threads owned by this object (see ``LDAPWorkerPool``) and the async caller waits
/// on a continuation. A request that cannot get a worker within the configured
/// timeout, or finds the queue full, fails as unavailable. Cancelling the calling
/// task answers at once with ``LDAPLoginResult/unavailable(_:)``; the worker
/// finishes its current call in the background. libldap calls that overrun their
/// timeouts have their socket cut by an ``LDAPWatchdog``.
public final class LDAPClient: Sendable {
    public let configuration: LDAPClientConfiguration
    /// Which servers are marked down (shared by the workers).
    public let health: LDAPServerHealth
    private let pool: LDAPWorkerPool

    public init(configuration: LDAPClientConfiguration) {
        Self.ignoreSIGPIPE()
        self.configuration = configuration
        let servers = configuration.servers
        self.health = LDAPServerHealth(uris: servers.isEmpty ? [configuration.uri] : servers, retryAfter: configuration.serverRetry)
        self.pool = LDAPWorkerPool(configuration: configuration, health: health)
    }

    /// Finds the one entry `filter` matches under `base` (on a service connection),
    /// asks `refuse` whether the entry may log in at all (account disabled,
    /// locked …), and binds as it with `password` (on a user-bind connection).
    /// Server failures move on to the next server (``LDAPServerHealth``).
    ///
    /// The filter must already contain RFC 4515-escaped user input (see
    /// ``LDAPEscaping/userFilter(template:username:)``). The password must not be
    /// empty: an empty simple bind is an anonymous bind (RFC 4513 §5.1.2).
    public func login(
        base: String,
        filter: String,
        attributes: [String],
        password: String,
        refuse: @escaping @Sendable (LDAPEntry) -> String? = { _ in nil }
    ) async -> LDAPLoginResult {
        precondition(!password.isEmpty, "refuse empty passwords before calling login")
        let timeout = configuration.timeout
        return await run(
            { connections -> LDAPLoginResult in
                do throws(LDAPError) {
                    return try connections.onServer { server throws(LDAPError) -> LDAPLoginResult in
                        let found = try server.withServiceConnection { connection throws(LDAPError) in
                            try connection.search(
                                base: base, filter: filter, attributes: attributes, sizeLimit: 2, timeout: timeout
                            )
                        }
                        if found.truncated || found.entries.count > 1 { return .ambiguous }
                        guard let entry = found.entries.first else { return .noSuchUser }
                        if let reason = refuse(entry) { return .refused(entry, reason: reason) }
                        do throws(LDAPError) {
                            try server.withUserConnection { connection throws(LDAPError) in
                                try connection.simpleBind(dn: entry.dn, password: password, operation: "user bind")
                            }
                        } catch {
                            guard error.isInvalidCredentials else { throw error }
                            return .invalidCredentials(dn: entry.dn, accountProblem: error.accountProblem)
                        }
                        return .authenticated(entry)
                    }
                } catch {
                    return .unavailable(error)
                }
            },
            unavailable: { reason in
                .unavailable(LDAPError(code: LDAP_TIMEOUT, operation: "queue", message: reason))
            }
        )
    }

    /// A subtree search on a service connection, at most `sizeLimit` entries (0: the
    /// server's limit).
    public func search(
        base: String,
        filter: String,
        attributes: [String],
        sizeLimit: Int32 = 0
    ) async -> Result<[LDAPEntry], LDAPError> {
        let timeout = configuration.timeout
        return await run(
            { connections -> Result<[LDAPEntry], LDAPError> in
                do throws(LDAPError) {
                    let found = try connections.onServer { server throws(LDAPError) in
                        try server.withServiceConnection { connection throws(LDAPError) in
                            try connection.search(
                                base: base, filter: filter, attributes: attributes, sizeLimit: sizeLimit, timeout: timeout
                            )
                        }
                    }
                    return .success(found.entries)
                } catch {
                    return .failure(error)
                }
            },
            unavailable: { reason in
                .failure(LDAPError(code: LDAP_TIMEOUT, operation: "queue", message: reason))
            }
        )
    }

    /// Unbinds every connection and stops the worker threads. Later requests fail
    /// as unavailable.
    public func shutdown() async {
        await pool.shutdown()
    }

    /// Runs `body` on a worker; `unavailable` makes the answer when it cannot run.
    private func run<T: Sendable>(
        _ body: @escaping @Sendable (LDAPWorkerConnections) -> T,
        unavailable: @escaping @Sendable (String) -> T
    ) async -> T {
        let outcome = LDAPOneShot<T>()
        let deadline = monotonicSeconds() + configuration.timeout
        // A backstop: whatever happens on the worker, the caller hears back within
        // the queue wait plus a full login's worth of timeouts.
        let limit = configuration.timeout * 6 + 1
        let timer = Task {
            try? await Task.sleep(nanoseconds: UInt64(limit * 1_000_000_000))
            if !Task.isCancelled { outcome.resolve(unavailable("no answer from the directory within \(limit) s")) }
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
                outcome.install(continuation)
                let job = LDAPWorkerPool.Job(
                    run: { connections in
                        guard !outcome.isResolved else { return }
                        outcome.resolve(body(connections))
                    },
                    abandon: { reason in outcome.resolve(unavailable(reason)) },
                    deadline: deadline
                )
                if !pool.submit(job) {
                    outcome.resolve(unavailable("no LDAP worker available (queue full or stage shut down)"))
                }
            }
        } onCancel: {
            outcome.resolve(unavailable("cancelled"))
        }
    }

    /// libldap writes to sockets that the server may have closed; without this a
    /// SIGPIPE would kill the relay. Only changes the default disposition.
    private static func ignoreSIGPIPE() {
        var current = sigaction()
        guard sigaction(SIGPIPE, nil, &current) == 0 else { return }
        if current.__sigaction_handler.sa_handler == nil {  // SIG_DFL
            signal(SIGPIPE, SIG_IGN)
        }
    }
}

/// A continuation resumed exactly once, by whichever comes first: the worker's
/// answer, abandonment, or cancellation (which may happen before the continuation
/// is installed).
public final class LDAPOneShot<T: Sendable>: @unchecked Sendable {
    private let lock = LDAPConditionLock()
    private var continuation: CheckedContinuation<T, Never>?
    private var result: T?
    private var delivered = false

    public init() {}

    public var isResolved: Bool { lock.withLock { result != nil || delivered } }

    public func install(_ continuation: CheckedContinuation<T, Never>) {
        let ready: T? = lock.withLock {
            if let result, !delivered {
                delivered = true
                return result
            }
            self.continuation = continuation
            return nil
        }
        if let ready { continuation.resume(returning: ready) }
    }

    public func resolve(_ value: T) {
        let target: CheckedContinuation<T, Never>? = lock.withLock {
            guard result == nil, !delivered else { return nil }
            result = value
            guard let continuation else { return nil }
            self.continuation = nil
            delivered = true
            return continuation
        }
        target?.resume(returning: value)
    }
}
