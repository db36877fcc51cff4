import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

extension TollgateServer {
    /// The listeners: started first, then systemd is told `READY=1`; on graceful
    /// shutdown `STOPPING=1`, and the sessions drain.
    struct ListenerService: Service {
        let server: TollgateServer
        func run() async throws {
            for listener in server.listeners { try await listener.start() }
            server.notifier?.ready(status: "accepting mail")
            try? await gracefulShutdown()
            server.notifier?.stopping(status: "draining sessions")
            server.forceExitOnSecondSignal()
            await server.drain()
        }
    }

    struct ReloadService: Service {
        let server: TollgateServer
        func run() async throws {
            let signals = await UnixSignalsSequence(trapping: .sighup)
            for await _ in signals.cancelOnGracefulShutdown() {
                await server.reload()
            }
        }
    }

    /// `WATCHDOG=1` every half `WATCHDOG_USEC`, each after an event loop has run a task,
    /// so a wedged relay stops reporting and systemd restarts it.
    struct WatchdogService: Service {
        let notifier: SystemdNotifier
        let interval: Duration
        let loops: any EventLoopGroup
        func run() async throws {
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                if (try? await loops.next().submit({}).get()) != nil {
                    notifier.watchdog()
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// Stops accepting and waits for sessions inside a transaction, at most
    /// `limits.drain_timeout`; those still open then get `421 4.3.2`.
    func drain() async {
        let timeout = state.withLockedValue { $0.limits.drainTimeout }
        for listener in listeners { await listener.stopAccepting() }
        // Idle sessions were told 421 and close at once; count those that are not.
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        try? await Task.sleep(until: min(deadline, .now + .milliseconds(100)))
        var open = openSessions
        if open > 0 {
            logger.info("shutting down: waiting for sessions to finish their transaction", metadata: ["smtp.sessions.open": "\(open)", "limits.drain_timeout": "\(timeout)s"])
        } else {
            logger.info("shutting down: no sessions to wait for")
        }
        var lastReport = ContinuousClock.now
        while open > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
            let now = openSessions
            if now != open, ContinuousClock.now - lastReport >= .seconds(5) {
                logger.info("shutting down: still waiting", metadata: ["smtp.sessions.open": "\(now)"])
                lastReport = .now
            }
            open = now
        }
        if open > 0 {
            logger.warning("shutting down: drain deadline passed, closing sessions with 421 4.3.2", metadata: ["smtp.sessions.open": "\(open)", "limits.drain_timeout": "\(timeout)s"])
            for listener in listeners { await listener.closeSessions() }
        }
    }

    var openSessions: Int { listeners.reduce(0) { $0 + $1.activeConnections } }

    /// Once shutdown has begun, a second SIGTERM or SIGINT (a second Ctrl-C) closes
    /// every session with `421 4.3.2` and exits with status 1 at once, without waiting
    /// for transactions or deliveries in flight. What was acknowledged is on disk;
    /// a delivery cut short is retried at the next start.
    func forceExitOnSecondSignal() {
        let logger = self.logger
        let listeners = self.listeners
        Task.detached {
            let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
            for await signal in signals {
                let open = listeners.reduce(0) { $0 + $1.activeConnections }
                logger.warning("second stop signal: closing sessions and exiting now", metadata: ["process.signal": "\(signal)", "smtp.sessions.open": "\(open)"])
                for listener in listeners { await listener.closeSessions() }
                exit(1)
            }
        }
    }
}
