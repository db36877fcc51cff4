import NIOConcurrencyHelpers
import TollgateConfiguration
import TollgateSpool
import TollgateMetrics

/// Wakes a sleeping loop early: a `wake()` before the sleep is not lost, and `stop()`
/// ends every sleep from then on.
final class WakeSignal: Sendable {
    private struct State {
        var waiter: CheckedContinuation<Void, Never>?
        var pending = false
        var stopped = false
    }

    private let state = NIOLockedValueBox(State())

    var isStopped: Bool { state.withLockedValue { $0.stopped } }

    func wake() {
        state.withLockedValue { s -> CheckedContinuation<Void, Never>? in
            defer { s.waiter = nil }
            if s.waiter == nil { s.pending = true }
            return s.waiter
        }?.resume()
    }

    /// Ends the current sleep without leaving a wake pending.
    private func resumeWaiter() {
        state.withLockedValue { s -> CheckedContinuation<Void, Never>? in
            defer { s.waiter = nil }
            return s.waiter
        }?.resume()
    }

    func stop() {
        state.withLockedValue { $0.stopped = true }
        wake()
    }

    /// Returns after `duration`, or sooner when woken or stopped.
    func sleep(upTo duration: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let resumeNow = self.state.withLockedValue { s -> Bool in
                        if s.pending || s.stopped {
                            s.pending = false
                            return true
                        }
                        s.waiter = c
                        return false
                    }
                    if resumeNow { c.resume() }
                }
            }
            group.addTask {
                // Time is up, or the task was cancelled (woken early, or the runner's
                // own task cancelled): either way the waiter must not wait on.
                try? await Task.sleep(for: duration)
                self.resumeWaiter()
            }
            await group.next()
            group.cancelAll()
        }
    }
}
