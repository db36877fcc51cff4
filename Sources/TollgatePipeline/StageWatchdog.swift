import NIOConcurrencyHelpers

/// Stage time limits without a timer per call: the deadlines sit in one table that one
/// task looks at every ``tick``, so arming and disarming a limit is a lock and a
/// dictionary update — no timer to schedule on another thread, no wake-up to cancel.
/// A limit fires up to one tick late, which is nothing against limits of seconds.
final class StageWatchdog: Sendable {
    static let shared = StageWatchdog()
    static let tick: Duration = .milliseconds(50)

    private struct Entry {
        var deadline: Double
        var fire: @Sendable () -> Void
    }

    private struct State {
        var next = 0
        var entries: [Int: Entry] = [:]
        var running = false
    }

    private let state = NIOLockedValueBox(State())

    /// Calls `fire` once `seconds` have passed, unless ``disarm(_:)`` comes first.
    func arm(after seconds: Double, _ fire: @escaping @Sendable () -> Void) -> Int {
        let (id, start) = state.withLockedValue { s -> (Int, Bool) in
            s.next += 1
            s.entries[s.next] = Entry(deadline: monotonicSeconds() + seconds, fire: fire)
            defer { s.running = true }
            return (s.next, !s.running)
        }
        if start {
            Task.detached(priority: .utility) { await self.watch() }
        }
        return id
    }

    /// Takes the limit back; `false` when it has already fired (or is firing).
    @discardableResult
    func disarm(_ id: Int) -> Bool {
        state.withLockedValue { $0.entries.removeValue(forKey: id) != nil }
    }

    /// Runs while limits are armed; fires the expired ones.
    private func watch() async {
        while true {
            try? await Task.sleep(for: Self.tick)
            let now = monotonicSeconds()
            let (due, idle) = state.withLockedValue { s -> ([@Sendable () -> Void], Bool) in
                var due: [@Sendable () -> Void] = []
                for (id, entry) in s.entries where entry.deadline <= now {
                    due.append(entry.fire)
                    s.entries[id] = nil
                }
                if s.entries.isEmpty { s.running = false }
                return (due, s.entries.isEmpty)
            }
            for fire in due { fire() }
            if idle { return }
        }
    }
}
