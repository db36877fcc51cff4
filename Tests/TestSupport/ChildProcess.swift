import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn` and reaped with `waitpid`.
///
/// Not `Foundation.Process`: its `waitUntilExit()` was seen to hang inside
/// swift-testing (see PLATFORM.md). The child gets an empty signal mask and
/// default dispositions (`POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF`) —
/// a child of a test otherwise inherits libdispatch's blocked mask and ignores
/// SIGTERM — stdin from `/dev/null`, stdout/stderr to files or `/dev/null`,
/// and no file descriptors of the test process other than 0–2.
///
/// Exit statuses are shell-style: the exit code, or 128 + the signal number if
/// a signal ended the process (SIGKILL → 137). Every wait is bounded. The
/// process is killed (SIGKILL) and reaped when the object goes away.
public final class ChildProcess: Sendable {
    /// The process ID (also the process group ID with `newProcessGroup: true`).
    public let pid: pid_t
    /// The executable's resolved path.
    public let executable: String
    public let arguments: [String]
    /// Whether the child leads its own process group (signals then go to the group).
    public let hasOwnProcessGroup: Bool

    private struct State {
        var exitStatus: Int32?
    }
    private let state = Mutex(State())

    init(pid: pid_t, executable: String, arguments: [String], hasOwnProcessGroup: Bool) {
        self.pid = pid
        self.executable = executable
        self.arguments = arguments
        self.hasOwnProcessGroup = hasOwnProcessGroup
    }

    deinit {
        if !reap() {
            signal(SIGKILL)
            _ = waitForExit(timeout: 5)
        }
    }

    /// The shell-style exit status, or `nil` while the process runs.
    public var exitStatus: Int32? {
        _ = reap()
        return state.withLock { $0.exitStatus }
    }

    /// Whether the process has not exited yet (reaps it if it has).
    public var isRunning: Bool { exitStatus == nil }

    /// Sends `sig` to the process (to its group with `newProcessGroup: true`)
    /// unless it has already been reaped. Returns whether the signal was sent.
    @discardableResult
    public func signal(_ sig: Int32) -> Bool {
        state.withLock { current in
            guard current.exitStatus == nil else { return false }
            return Glibc.kill(hasOwnProcessGroup ? -pid : pid, sig) == 0
        }
    }

    /// SIGKILL, then reaps the process (waits at most 5 s). Returns the exit status.
    @discardableResult
    public func kill() -> Int32? {
        signal(SIGKILL)
        return waitForExit(timeout: 5)
    }

    /// SIGTERM; SIGKILL if the process is still running after `timeout`
    /// seconds; then reaps it. Returns the exit status (`nil` only if even
    /// SIGKILL did not end it within 5 s).
    @discardableResult
    public func terminate(timeout: Double) -> Int32? {
        if let status = exitStatus { return status }
        signal(SIGTERM)
        if let status = waitForExit(timeout: timeout) { return status }
        return kill()
    }

    /// The async form of ``terminate(timeout:)``, which sleeps instead of blocking a thread.
    @discardableResult
    public func terminate(timeout: Double) async -> Int32? {
        if let status = exitStatus { return status }
        signal(SIGTERM)
        if let status = await waitForExit(timeout: timeout) { return status }
        signal(SIGKILL)
        return await waitForExit(timeout: 5)
    }

    /// Polls `waitpid(WNOHANG)` until the process exits (returns its status)
    /// or `timeout` seconds pass (returns `nil`; the process keeps running).
    @discardableResult
    public func waitForExit(timeout: Double) -> Int32? {
        waitUntil(timeout: timeout, interval: 0.01) { reap() }
        return state.withLock { $0.exitStatus }
    }

    /// The async form of ``waitForExit(timeout:)``.
    @discardableResult
    public func waitForExit(timeout: Double) async -> Int32? {
        await waitUntil(timeout: timeout, interval: 0.01) { reap() }
        return state.withLock { $0.exitStatus }
    }

    /// `waitpid(WNOHANG)`; records the status. Returns whether the process has exited.
    private func reap() -> Bool {
        state.withLock { current in
            if current.exitStatus != nil { return true }
            var status: Int32 = 0
            while true {
                let result = waitpid(pid, &status, WNOHANG)
                if result == pid {
                    let signal = status & 0x7f
                    current.exitStatus = signal == 0 ? (status >> 8) & 0xff : 128 + signal
                    return true
                }
                if result == 0 { return false }
                if errno == EINTR { continue }
                // ECHILD: someone else reaped it; the status is lost.
                current.exitStatus = -1
                return true
            }
        }
    }
}
