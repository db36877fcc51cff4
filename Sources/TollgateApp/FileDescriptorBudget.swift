#if canImport(Glibc)
import Glibc
#endif
import TollgateConfiguration

/// Open files are a resource like memory: each client session holds one, so do
/// upstream connections, the spool and the plugins' connections. Running out makes
/// `accept` fail (the kernel then keeps newcomers waiting unanswered) and can break
/// the spool, so Tollgate caps client sessions below the limit instead: a newcomer
/// past the cap gets `421 4.7.0` at once, and nothing else is short of files.
enum FileDescriptorBudget {
    /// Files kept for everything but client sessions, besides the upstream pools:
    /// the spool (SQLite's pool and WAL), listeners, plugins' directory connections,
    /// logs, the metrics server.
    static let fixedReserve = 64

    /// Raises the soft limit of open files to the hard limit (what systemd's
    /// `LimitNOFILE` or `ulimit -Hn` allows) and returns the soft limit then in force.
    static func raiseSoftLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return Int.max }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur == rlim_t.max ? Int.max : Int(clamping: limit.rlim_cur)
    }

    /// Files needed besides client sessions.
    static func reserved(_ configuration: TollgateConfiguration) -> Int {
        fixedReserve + configuration.upstreams.reduce(0) { $0 + $1.maxConnections }
    }

    /// The most client sessions each listener may hold with `openFiles` available,
    /// at least 1: the file budget left after ``reserved(_:)``, shared by the listeners.
    static func sessionsPerListener(_ configuration: TollgateConfiguration, openFiles: Int) -> Int {
        let listeners = max(configuration.listeners.count, 1)
        guard openFiles < Int.max / 2 else { return configuration.limits.maxConnections }
        return max((openFiles - reserved(configuration)) / listeners, 1)
    }
}
