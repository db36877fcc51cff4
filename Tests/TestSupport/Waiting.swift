#if canImport(Glibc)
import Glibc
#endif

/// Evaluates `condition` every `interval` seconds until it is true (returns
/// `true`) or `timeout` seconds have passed (returns `false`; the condition is
/// checked one last time at the deadline). Blocks the calling thread: in async
/// code the `async` overload is chosen, which sleeps instead (this one is
/// `@_disfavoredOverload` so that a synchronous closure does not select it there).
@_disfavoredOverload
@discardableResult
public func waitUntil(timeout: Double, interval: Double = 0.05, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = MonotonicTime.now + timeout
    while true {
        if try condition() { return true }
        let left = deadline - MonotonicTime.now
        if left <= 0 { return false }
        usleep(UInt32(min(left, max(interval, 0.001)) * 1_000_000))
    }
}

/// The async form of ``waitUntil(timeout:interval:_:)``: sleeps with
/// `Task.sleep`, so no thread of the cooperative pool is held (there are only
/// as many as cores, and the code under test may need them). Returns `false`
/// early if the task is cancelled.
@discardableResult
public func waitUntil(timeout: Double, interval: Double = 0.05, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = MonotonicTime.now + timeout
    while true {
        if try await condition() { return true }
        let left = deadline - MonotonicTime.now
        if left <= 0 || Task.isCancelled { return false }
        try? await Task.sleep(nanoseconds: UInt64(min(left, max(interval, 0.001)) * 1_000_000_000))
    }
}

/// Seconds on the monotonic clock (`CLOCK_MONOTONIC`).
enum MonotonicTime {
    static var now: Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1_000_000_000
    }
}
