import CLDAP

#if canImport(Glibc)
import Glibc
#endif

/// The socket of one libldap handle, which another thread may cut (see
/// `cldap_socket_watch` in the CLDAP shim).
final class LDAPSocketWatch: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<cldap_socket_watch>

    init() {
        pointer = .allocate(capacity: 1)
        cldap_socket_watch_init(pointer)
    }

    deinit {
        cldap_socket_watch_destroy(pointer)
        pointer.deallocate()
    }

    /// Shuts the socket down (both directions); the blocked libldap call then fails.
    @discardableResult
    func interrupt() -> Bool { cldap_socket_watch_interrupt(pointer) != 0 }
}

/// A backstop for libldap calls that overrun their own timeouts: every blocking
/// call is armed with a deadline, and a watchdog thread shuts down the socket of
/// any call still running past it. Known case: libldap 2.5 with GnuTLS spins
/// forever in an ldaps:// handshake with a server that accepted the connection
/// but never answers; the network timeout does not stop it.
final class LDAPWatchdog: @unchecked Sendable {
    private let lock = LDAPConditionLock()
    // Guarded by `lock`:
    private var armed: [ObjectIdentifier: (watch: LDAPSocketWatch, deadline: Double)] = [:]
    private var stopped = false
    private var threadRunning = false
    /// How often the thread looks while a call is armed.
    private let interval: Double = 0.1

    /// Runs `body` with `watch` cut if it is still running after `seconds`.
    func guarded<T>(_ watch: LDAPSocketWatch, seconds: Double, _ body: () -> T) -> T {
        let key = ObjectIdentifier(watch)
        lock.withLock {
            armed[key] = (watch, monotonicSeconds() + seconds)
            startThreadIfNeeded()
            lock.signal()
        }
        defer { lock.withLock { armed[key] = nil } }
        return body()
    }

    /// Stops the thread (armed calls are no longer watched).
    func stop() {
        lock.withLock {
            stopped = true
            lock.broadcast()
        }
    }

    /// Called with the lock held.
    private func startThreadIfNeeded() {
        guard !threadRunning, !stopped else { return }
        threadRunning = true
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let watchdog = Unmanaged<LDAPWatchdog>.fromOpaque(raw!).takeRetainedValue()
            watchdog.run()
            return nil
        }, context)
        if rc == 0 {
            pthread_detach(thread)
        } else {
            Unmanaged<LDAPWatchdog>.fromOpaque(context).release()
            threadRunning = false
        }
    }

    private func run() {
        cldap_set_thread_name("tollgate-ldapdog")
        lock.lock()
        while !stopped {
            if armed.isEmpty {
                lock.wait()
                continue
            }
            let now = monotonicSeconds()
            for (_, entry) in armed where entry.deadline <= now {
                entry.watch.interrupt()
            }
            lock.unlock()
            usleep(useconds_t(interval * 1_000_000))
            lock.lock()
        }
        threadRunning = false
        lock.unlock()
    }
}
