import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PostgresNIO

/// Whether the database answers, as the store last found it, and the bound on how
/// long any one operation may wait for it.
///
/// `PostgresClient` waits for a connection for as long as it takes (a request queued
/// while the server is down is served once it is back), and a server that is frozen
/// never answers at all; neither may hang a session. So every operation runs under a
/// deadline a little past the server's own `statement_timeout`, and once one fails for
/// want of the database, later operations fail at once until a probe connection gets
/// through again (bounded backoff, one log line per change of state). New mail then
/// gets 451 4.3.0 straight away instead of after the deadline.
final class PostgresReachability: Sendable {
    private struct State {
        var down = false
        var probing = false
        var since: ContinuousClock.Instant?
        var lastError = ""
    }

    private let state = NIOLockedValueBox(State())
    let deadline: Duration
    private let logger: Logger
    private let probe: @Sendable () async throws -> Void

    init(deadline: Duration, logger: Logger, probe: @escaping @Sendable () async throws -> Void) {
        self.deadline = deadline
        self.logger = logger
        self.probe = probe
    }

    /// Whether the last operation or probe found the database unreachable.
    var isDown: Bool { state.withLockedValue { $0.down } }

    /// Runs `operation` unless the database is known to be down, giving up on it after
    /// the deadline (the operation's task is cancelled: a request still waiting for a
    /// connection is withdrawn; one already sent may still complete).
    func run<T: Sendable>(_ what: String, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        if let reason = state.withLockedValue({ $0.down ? $0.lastError : nil }) {
            throw PostgresSpool.Error(description: "the database is unreachable (\(reason))")
        }
        do {
            return try await withDeadline(deadline, what, operation)
        } catch {
            if Self.isConnectionLevel(error) { markDown(PostgresSpool.describe(error)) }
            throw PostgresSpool.Error(description: "\(what): \(PostgresSpool.describe(error))")
        }
    }

    /// Notes that the database did not answer and starts probing for its return.
    func markDown(_ reason: String) {
        let start = state.withLockedValue { s -> Bool in
            s.lastError = reason
            guard !s.down else { return false }
            s.down = true
            s.since = .now
            s.probing = true
            return true
        }
        guard start else { return }
        logger.error("database unreachable: new mail is deferred and delivery pauses until it is back", metadata: ["error.message": "\(reason)"])
        Task { await self.probeUntilBack() }
    }

    private func probeUntilBack() async {
        var wait = Duration.milliseconds(250)
        while true {
            try? await Task.sleep(for: wait)
            do {
                try await withDeadline(deadline, "probe", probe)
                let since = state.withLockedValue { s -> ContinuousClock.Instant? in
                    s.down = false
                    s.probing = false
                    return s.since
                }
                let seconds = since.map { Double(($0.duration(to: .now)).components.seconds) } ?? 0
                logger.notice("database reachable again", metadata: ["spool.postgres.down_seconds": "\(Int(seconds))"])
                return
            } catch {
                state.withLockedValue { $0.lastError = PostgresSpool.describe(error) }
                wait = min(wait * 2, .seconds(5))
            }
        }
    }

    /// Errors that mean "no database", as opposed to one statement's failure.
    static func isConnectionLevel(_ error: any Error) -> Bool {
        if error is DeadlineExceeded { return true }
        guard let error = error as? PSQLError else { return false }
        switch error.code {
        case .connectionError, .serverClosedConnection, .uncleanShutdown, .poolClosed, .clientClosedConnection, .sslUnsupported:
            return true
        case .server:
            // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 08xxx connection exceptions.
            let state = error.serverInfo?[.sqlState] ?? ""
            return state.hasPrefix("57P") || state.hasPrefix("08")
        default:
            return false
        }
    }
}

extension PostgresReachability {
    /// A batch whose failure is its statement's own, so that its items may be tried one
    /// by one: not the connection's, and not a statement or lock timeout (57014, 55P03),
    /// which would only come again for each item, a timeout apiece.
    static func isRetryableOneByOne(_ error: any Error) -> Bool {
        guard !isConnectionLevel(error), !(error is BatchOutputMismatch) else { return false }
        if let error = error as? PSQLError, error.code == .server, let state = error.serverInfo?[.sqlState], state == "57014" || state == "55P03" {
            return false
        }
        return true
    }
}

struct DeadlineExceeded: Error, CustomStringConvertible {
    var what: String
    var seconds: Double
    var description: String { "no answer from the database within \(seconds) s" }
}

/// Runs `operation` in a task of its own and returns its result, or throws
/// ``DeadlineExceeded`` after `limit` and cancels the task (without waiting for it:
/// a task stuck on a frozen server must not hold its caller). The timer is a NIO
/// scheduled task, cancelled when the operation ends: a cancelled `Task.sleep` keeps
/// memory until its original deadline (README, "Memory"), at every operation's rate.
func withDeadline<T: Sendable>(_ limit: Duration, _ what: String, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let once = NIOLockedValueBox<CheckedContinuation<T, any Error>?>(nil)
    let seconds = Double(limit.components.seconds) + Double(limit.components.attoseconds) / 1e18
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        once.withLockedValue { $0 = continuation }
        @Sendable func finish(_ result: Result<T, any Error>) {
            guard let c = once.withLockedValue({ c -> CheckedContinuation<T, any Error>? in defer { c = nil }; return c }) else { return }
            c.resume(with: result)
        }
        let work = NIOLockedValueBox<Task<Void, Never>?>(nil)
        let timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) {
            finish(.failure(DeadlineExceeded(what: what, seconds: seconds)))
            work.withLockedValue { $0?.cancel() }
        }
        let task = Task {
            do { finish(.success(try await operation())) } catch { finish(.failure(error)) }
            timer.cancel()
        }
        work.withLockedValue { $0 = task }
    }
}
