import NIOConcurrencyHelpers

/// Holds a step of a fake (a delegate's decision, a transport's delivery) until the
/// test opens it; waiters after the opening go straight on.
public final class Gate: Sendable {
    private let state = NIOLockedValueBox<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    public init(open: Bool = false) {
        state.withLockedValue { $0.open = open }
    }

    public func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resume = state.withLockedValue { s -> Bool in
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if resume { c.resume() }
        }
    }

    public func open() {
        let waiters = state.withLockedValue { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }
}
