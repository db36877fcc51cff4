import Logging
import NIOConcurrencyHelpers
import NIOCore
import SMTPCore

/// One open, greeted, (optionally) TLS-protected and authenticated SMTP session with an
/// upstream. Transactions run one at a time with ``send(_:content:)``; between them the
/// connection may be kept for reuse while ``isUsable``.
public final class SMTPClientConnection: Sendable {
    /// Upper-case EHLO keywords, as last announced (after TLS, the post-TLS EHLO).
    public let capabilities: Set<String>
    /// The server's `SIZE` limit, if it announced one other than 0.
    public let maxSize: Int?
    /// The parsed EHLO reply.
    public let serverCapabilities: ServerCapabilities
    /// Whether the session runs over TLS (STARTTLS or implicit).
    public let isTLSActive: Bool

    let upstream: UpstreamChannel
    let configuration: SMTPClientConfiguration
    let logger: Logger
    let state = NIOLockedValueBox(State())

    struct State {
        /// A call is using the connection.
        var busy = false
        /// MAIL was accepted but the transaction was not ended: RSET before the next one.
        var openTransaction = false
        /// A fault, timeout or 421 made the connection unusable.
        var broken = false
    }

    init(upstream: UpstreamChannel, capabilities: ServerCapabilities, isTLSActive: Bool, configuration: SMTPClientConfiguration, logger: Logger) {
        self.upstream = upstream
        self.serverCapabilities = capabilities
        self.capabilities = capabilities.keywords
        self.maxSize = capabilities.maxSize
        self.isTLSActive = isTLSActive
        self.configuration = configuration
        self.logger = logger
    }

    /// Whether a new transaction may start: open, idle, and nothing went wrong.
    public var isUsable: Bool {
        let state = self.state.withLockedValue { $0 }
        return !state.busy && !state.broken && upstream.channel.isActive
    }

    /// Sends RSET, ending any transaction (RFC 5321 §4.1.1.5). ``send(_:content:)``
    /// already does this itself when the previous transaction was left open.
    public func reset() async throws {
        try acquire()
        defer { release() }
        do {
            try await resetExchange()
        } catch {
            markBroken(error)
            throw error
        }
    }

    /// Sends QUIT, waits briefly for the reply, and closes (RFC 5321 §4.1.1.10).
    public func close() async {
        await closeNow()
    }

    func closeNow() async {
        let acquired = state.withLockedValue { state -> Bool in
            guard !state.busy, !state.broken else { return false }
            state.busy = true
            state.broken = true
            return true
        }
        if acquired, upstream.channel.isActive {
            upstream.send(.quit)
            let wait = min(configuration.commandTimeout, .seconds(10))
            _ = try? await upstream.read(timeout: wait, waitingFor: "QUIT")
        }
        state.withLockedValue { $0.broken = true }
        await upstream.close()
    }

    // MARK: Exclusive use

    func acquire() throws(SMTPClientError) {
        let result: SMTPClientError? = state.withLockedValue { state in
            if state.broken { return .connectionClosed }
            if state.busy { return .protocolError("connection already in use") }
            state.busy = true
            return nil
        }
        if let result { throw result }
        guard upstream.channel.isActive else {
            state.withLockedValue {
                $0.busy = false
                $0.broken = true
            }
            throw .connectionClosed
        }
    }

    func release() {
        state.withLockedValue { $0.busy = false }
    }

    /// After any fault the session state is unknown: never reuse it.
    func markBroken(_ error: any Error) {
        state.withLockedValue { $0.broken = true }
        upstream.fail((error as? SMTPClientError) ?? .connectionClosed)
    }

    func resetExchange() async throws(SMTPClientError) {
        upstream.send(.rset)
        let reply = try await upstream.read(timeout: configuration.commandTimeout, waitingFor: "RSET")
        guard reply.isPositive else { throw .protocolError("RSET refused: \(reply)") }
        state.withLockedValue { $0.openTransaction = false }
    }
}
