import NIOConcurrencyHelpers
import NIOCore

/// Failed logins per client address, across sessions and listeners (RELIABILITY C11):
/// a client with `maxFailures` failures within `window` gets `421 4.7.0` to its next
/// AUTH, before any verifier is asked, until its oldest failure in the window ages out.
/// With the per-session limit (three failures close a session) this makes guessing
/// cost a new connection per three tries and stops it after `maxFailures`
/// (Postfix's `smtpd_client_auth_rate_limit`, counted by anvil, is the model).
///
/// Memory is bounded: at most ``maxClients`` addresses are tracked; past that, clients
/// whose failures have aged out go first, then the ones seen longest ago.
public final class AuthFailureTracker: Sendable {
    public struct Limits: Sendable, Equatable {
        /// 0 turns the tracker off.
        public var maxFailures: Int
        public var window: TimeAmount

        public init(maxFailures: Int = 10, window: TimeAmount = .minutes(15)) {
            self.maxFailures = maxFailures
            self.window = window
        }
    }

    public static let maxClients = 10_000

    private struct State {
        var limits: Limits
        /// Failure times per client, oldest first, at most `limits.maxFailures` each.
        var failures: [String: [NIODeadline]] = [:]
    }

    private let state: NIOLockedValueBox<State>
    private let now: @Sendable () -> NIODeadline

    public init(_ limits: Limits, now: @escaping @Sendable () -> NIODeadline = { .now() }) {
        state = NIOLockedValueBox(State(limits: limits))
        self.now = now
    }

    /// New limits (a configuration reload); the failures counted so far stay.
    public func update(_ limits: Limits) {
        state.withLockedValue { $0.limits = limits }
    }

    /// Whether `client` has used up its failures.
    public func isBlocked(_ client: String) -> Bool {
        let now = now()
        return state.withLockedValue { state in
            guard state.limits.maxFailures > 0, let times = state.failures[client] else { return false }
            let recent = times.filter { now - $0 < state.limits.window }
            state.failures[client] = recent.isEmpty ? nil : recent
            return recent.count >= state.limits.maxFailures
        }
    }

    /// Counts one failed login of `client`.
    public func recordFailure(_ client: String) {
        let now = now()
        state.withLockedValue { state in
            let limits = state.limits
            guard limits.maxFailures > 0 else { return }
            var times = (state.failures[client] ?? []).filter { now - $0 < limits.window }
            times.append(now)
            if times.count > limits.maxFailures { times.removeFirst(times.count - limits.maxFailures) }
            state.failures[client] = times
            if state.failures.count > Self.maxClients {
                state.failures = state.failures.filter { now - ($0.value.last ?? now) < limits.window }
                while state.failures.count > Self.maxClients,
                    let oldest = state.failures.min(by: { ($0.value.last ?? now) < ($1.value.last ?? now) })?.key
                {
                    state.failures[oldest] = nil
                }
            }
        }
    }
}
