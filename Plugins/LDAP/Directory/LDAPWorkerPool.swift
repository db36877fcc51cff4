import CLDAP

#if canImport(Glibc)
import Glibc
#endif

/// A fixed set of threads, each owning a ``LDAPWorkerConnections``, that run
/// blocking libldap calls. Async callers submit jobs through
/// ``LDAPClient``; Swift's cooperative threads never block on the directory.
final class LDAPWorkerPool: @unchecked Sendable {
    struct Job {
        /// Runs on a worker thread with that worker's connections.
        var run: (LDAPWorkerConnections) -> Void
        /// Called instead of `run` when the job waited too long or the pool shut down.
        var abandon: (String) -> Void
        var deadline: Double
    }

    private let lock = LDAPConditionLock()
    private let configuration: LDAPClientConfiguration
    private let watchdog = LDAPWatchdog()
    let health: LDAPServerHealth
    // Guarded by `lock`:
    private var queue: [Job] = []
    private var queueHead = 0
    private var stopping = false
    private var running = 0
    private var stopWaiters: [CheckedContinuation<Void, Never>] = []

    init(configuration: LDAPClientConfiguration, health: LDAPServerHealth) {
        self.configuration = configuration
        self.health = health
        let count = max(1, configuration.poolSize)
        running = count
        for index in 0..<count {
            let context = Unmanaged.passRetained(WorkerContext(pool: self, index: index)).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                let context = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                context.pool.workerLoop()
                return nil
            }, context)
            if rc == 0 {
                pthread_detach(thread)
            } else {
                Unmanaged<WorkerContext>.fromOpaque(context).release()
                lock.withLock { running -= 1 }
            }
        }
    }

    /// Queues a job; `false` (and nothing queued) when the pool is stopping or full.
    func submit(_ job: Job) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !stopping, running > 0, queue.count - queueHead < configuration.maxQueuedRequests else {
            return false
        }
        queue.append(job)
        lock.signal()
        return true
    }

    /// Stops the workers: queued jobs are abandoned, each worker unbinds its
    /// connections; returns when all workers have exited.
    func shutdown() async {
        let abandoned: [Job] = lock.withLock {
            stopping = true
            let rest = Array(queue[queueHead...])
            queue.removeAll()
            queueHead = 0
            lock.broadcast()
            return rest
        }
        for job in abandoned { job.abandon("the LDAP stage is shutting down") }
        defer { watchdog.stop() }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done: Bool = lock.withLock {
                if running == 0 { return true }
                stopWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    private func next() -> Job? {
        lock.lock()
        defer { lock.unlock() }
        while queueHead == queue.count && !stopping { lock.wait() }
        if stopping { return nil }
        let job = queue[queueHead]
        queueHead += 1
        if queueHead > 64 && queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        return job
    }

    private func workerLoop() {
        cldap_set_thread_name("tollgate-ldap")
        let connections = LDAPWorkerConnections(configuration: configuration, watchdog: watchdog, health: health)
        while let job = next() {
            if monotonicSeconds() > job.deadline {
                job.abandon("waited too long for a free LDAP connection")
            } else {
                job.run(connections)
            }
        }
        connections.close()
        let waiters: [CheckedContinuation<Void, Never>] = lock.withLock {
            running -= 1
            guard running == 0 else { return [] }
            defer { stopWaiters.removeAll() }
            return stopWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    private final class WorkerContext {
        let pool: LDAPWorkerPool
        let index: Int
        init(pool: LDAPWorkerPool, index: Int) {
            self.pool = pool
            self.index = index
        }
    }
}

/// The two connections of one worker thread: a service connection, bound as the
/// service account, for searches; and a connection used only for binding as users
/// (a bind changes the identity of the whole connection). Opened lazily, thrown
/// away after a connection-level error or timeout. Both talk to the same server,
/// chosen by ``onServer(_:)``.
final class LDAPWorkerConnections {
    let configuration: LDAPClientConfiguration
    private let watchdog: LDAPWatchdog
    private let health: LDAPServerHealth
    private let servers: [String]
    /// The server the open connections talk to.
    private var server = 0
    private var service: LDAPConnection?
    private var user: LDAPConnection?

    init(configuration: LDAPClientConfiguration, watchdog: LDAPWatchdog, health: LDAPServerHealth) {
        self.configuration = configuration
        self.watchdog = watchdog
        self.health = health
        self.servers = configuration.servers.isEmpty ? [configuration.uri] : configuration.servers
    }

    /// Runs `body` against the servers in ``LDAPServerHealth/order(now:)``: a
    /// server failure (``LDAPError/isServerFailure``) marks that server down and
    /// tries the next; any other answer, success or error, is final and a
    /// success marks the server up. Throws the last server failure when every
    /// server failed.
    func onServer<T>(_ body: (LDAPWorkerConnections) throws(LDAPError) -> T) throws(LDAPError) -> T {
        var last: LDAPError?
        for index in health.order(now: monotonicSeconds()) {
            if index != server {
                close()
                server = index
            }
            do {
                let result = try body(self)
                health.markUp(index)
                return result
            } catch {
                guard error.isServerFailure else { throw error }
                close()
                health.markDown(index, now: monotonicSeconds())
                var described = error
                described.message += " [\(servers[index])]"
                last = described
            }
        }
        throw last ?? LDAPError(code: LDAP_SERVER_DOWN, operation: "connect", message: "no directory server configured")
    }

    /// Runs `body` on the service connection, opening and binding one if needed;
    /// retries once on a fresh connection when a reused one turns out dead.
    func withServiceConnection<T>(_ body: (LDAPConnection) throws(LDAPError) -> T) throws(LDAPError) -> T {
        var retried = false
        while true {
            let connection: LDAPConnection
            let wasReused = service != nil
            if let service {
                connection = service
            } else {
                connection = try LDAPConnection(uri: servers[server], configuration: configuration, watchdog: watchdog)
                if let dn = configuration.bindDN {
                    do {
                        try connection.simpleBind(dn: dn, password: configuration.bindPassword ?? "", operation: "service bind")
                    } catch {
                        connection.close()
                        throw error
                    }
                }
                service = connection
            }
            do {
                return try body(connection)
            } catch {
                guard error.isConnectionFailure else { throw error }
                connection.close()
                service = nil
                if error.code == LDAP_SERVER_DOWN, wasReused, !retried {
                    retried = true
                    continue
                }
                throw error
            }
        }
    }

    /// Runs `body` on the user-bind connection; same reuse and retry rules.
    func withUserConnection<T>(_ body: (LDAPConnection) throws(LDAPError) -> T) throws(LDAPError) -> T {
        var retried = false
        while true {
            let connection: LDAPConnection
            let wasReused = user != nil
            if let user {
                connection = user
            } else {
                connection = try LDAPConnection(uri: servers[server], configuration: configuration, watchdog: watchdog)
                user = connection
            }
            do {
                return try body(connection)
            } catch {
                guard error.isConnectionFailure else { throw error }
                connection.close()
                user = nil
                if error.code == LDAP_SERVER_DOWN, wasReused, !retried {
                    retried = true
                    continue
                }
                throw error
            }
        }
    }

    func close() {
        service?.close()
        service = nil
        user?.close()
        user = nil
    }
}
