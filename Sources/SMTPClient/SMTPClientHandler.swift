import NIOCore
import NIOSSL
import NIOTLS
import SMTPCore

/// The NIO side of an upstream connection: frames bytes into replies with
/// ``SMTPReplyParser`` and hands them, in order, to whoever waits with
/// ``nextReply(timeout:waitingFor:)``. It also owns the switch to TLS, because the
/// plaintext that must be dropped (RELIABILITY C7) is only visible here.
/// Every method runs on the channel's event loop.
final class SMTPClientHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Never

    enum StartTLSOutcome: Sendable, Hashable {
        case established
        /// The server answered STARTTLS with this non-2xx reply; still plaintext.
        case refused(SMTPReply)
    }

    struct TLSSetup {
        var context: NIOSSLContext
        var serverHostname: String?
        /// The name or address connected to, for error text.
        var peer: String
        /// Whether the upstream's certificate is checked (then ``PeerCertificateCheck``
        /// watches the check, to say why it failed).
        var verifies: Bool

        func makeHandler(_ check: PeerCertificateCheck) throws -> NIOSSLClientHandler {
            guard verifies else { return try NIOSSLClientHandler(context: context, serverHostname: serverHostname) }
            return try Self.makeWatchedHandler(context, serverHostname, check)
        }

        // BoringSSL's per-certificate callback is the only place that sees why a chain
        // failed; NIOSSL marks the initializer taking it deprecated.
        @available(*, deprecated)
        private static func makeWatchedHandler(_ context: NIOSSLContext, _ serverHostname: String?, _ check: PeerCertificateCheck) throws -> NIOSSLClientHandler {
            try NIOSSLClientHandler(context: context, serverHostname: serverHostname, verificationCallback: check.callback)
        }
    }

    private enum TLSState {
        case plaintext
        /// STARTTLS sent; its reply decides.
        case awaitingStartTLSReply(TLSSetup, EventLoopPromise<StartTLSOutcome>)
        /// The TLS handler is in place. `nil` for implicit TLS, whose result shows up as
        /// the greeting or an error.
        case handshaking(EventLoopPromise<StartTLSOutcome>?)
        case active
    }

    private var parser = SMTPReplyParser()
    private var replies = CircularBuffer<SMTPReply>()
    private var waiter: EventLoopPromise<SMTPReply>?
    private var deadline: Scheduled<Void>?
    private var tlsState: TLSState
    private var context: ChannelHandlerContext?
    private let eventLoop: any EventLoop
    /// Set once; every later wait fails with it after the queued replies are drained.
    private(set) var failure: SMTPClientError?

    /// What the certificate check of the current handshake saw.
    let certificateCheck = PeerCertificateCheck()
    /// The peer of the current or last handshake, for error text.
    private var tlsPeer: String

    init(implicitTLS: TLSSetup?, eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        tlsState = implicitTLS != nil ? .handshaking(nil) : .plaintext
        tlsPeer = implicitTLS?.peer ?? "upstream"
    }

    private func tlsFailure(_ error: any Error) -> SMTPClientError {
        .tlsHandshake(UpstreamFailureText.tls(error, peer: tlsPeer, certificate: certificateCheck.problem))
    }

    var isTLSActive: Bool {
        if case .active = tlsState { return true }
        return false
    }

    var isIdleAndHealthy: Bool {
        failure == nil && context != nil && replies.isEmpty && waiter == nil && parser.bufferedBytes == 0
    }

    // MARK: Requests from the connection

    /// The next reply, or the failure that ended the connection. One waiter at a time.
    func nextReply(timeout: TimeAmount, waitingFor what: String) -> EventLoopFuture<SMTPReply> {
        if let reply = replies.popFirst() { return eventLoop.makeSucceededFuture(reply) }
        if let failure { return eventLoop.makeFailedFuture(failure) }
        guard context != nil else { return eventLoop.makeFailedFuture(SMTPClientError.connectionClosed) }
        guard waiter == nil else {
            return eventLoop.makeFailedFuture(SMTPClientError.protocolError("two callers waiting for one reply"))
        }
        let promise = eventLoop.makePromise(of: SMTPReply.self)
        waiter = promise
        armDeadline(timeout, what: what)
        return promise.futureResult
    }

    /// Sends STARTTLS and, on a 2xx reply, drops every buffered plaintext byte, puts the
    /// TLS handler first in the pipeline and waits for the handshake (RFC 3207 §4).
    func startTLS(_ setup: TLSSetup, timeout: TimeAmount) -> EventLoopFuture<StartTLSOutcome> {
        if let failure { return eventLoop.makeFailedFuture(failure) }
        guard let context else { return eventLoop.makeFailedFuture(SMTPClientError.connectionClosed) }
        guard case .plaintext = tlsState, replies.isEmpty, waiter == nil else {
            let error = SMTPClientError.protocolError("unexpected reply before STARTTLS")
            fail(error)
            return eventLoop.makeFailedFuture(error)
        }
        let promise = eventLoop.makePromise(of: StartTLSOutcome.self)
        tlsState = .awaitingStartTLSReply(setup, promise)
        armDeadline(timeout, what: "STARTTLS")
        var buffer = context.channel.allocator.buffer(capacity: 10)
        ClientCommand.startTLS.write(to: &buffer)
        context.writeAndFlush(NIOAny(buffer), promise: nil)
        return promise.futureResult
    }

    /// Ends the connection with `error` (e.g. after a deadline).
    func fail(_ error: SMTPClientError) {
        if failure == nil { failure = error }
        let failure = self.failure ?? error
        deadline?.cancel()
        deadline = nil
        if replies.isEmpty, let waiter {
            self.waiter = nil
            waiter.fail(failure)
        }
        switch tlsState {
        case .awaitingStartTLSReply(_, let promise):
            tlsState = .plaintext
            promise.fail(failure)
        case .handshaking(let promise):
            tlsState = .plaintext
            promise?.fail(failure)
        case .plaintext, .active:
            break
        }
        context?.close(promise: nil)
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard failure == nil else { return }
        parser.append(unwrapInboundIn(data))
        do {
            while let reply = try parser.next() {
                if case .awaitingStartTLSReply(let setup, let promise) = tlsState {
                    if (200..<300).contains(reply.code) {
                        beginTLS(setup, promise: promise, context: context)
                        return
                    }
                    tlsState = .plaintext
                    deadline?.cancel()
                    deadline = nil
                    promise.succeed(.refused(reply))
                    continue
                }
                deliver(reply)
            }
        } catch {
            fail(.protocolError(error.reason))
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event,
            case .handshaking(let promise) = tlsState
        {
            tlsState = .active
            if let promise {
                deadline?.cancel()
                deadline = nil
                promise.succeed(.established)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .handshaking = tlsState {
            fail(tlsFailure(error))
        } else {
            fail(.connectionClosed)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .handshaking = tlsState {
            fail(.tlsHandshake("upstream closed the connection during the TLS handshake"))
        } else {
            fail(.connectionClosed)
        }
        context.fireChannelInactive()
    }

    // MARK: Internals

    private func deliver(_ reply: SMTPReply) {
        if let waiter {
            self.waiter = nil
            deadline?.cancel()
            deadline = nil
            waiter.succeed(reply)
            return
        }
        replies.append(reply)
        if replies.count > SMTPClientLimits.maxQueuedReplies {
            fail(.protocolError("too many unsolicited replies"))
        }
    }

    /// RELIABILITY C7 / CVE-2011-0411 client side: whatever followed the 220 in plaintext
    /// is the server's (or an attacker's) and must never be read as a later reply.
    private func beginTLS(_ setup: TLSSetup, promise: EventLoopPromise<StartTLSOutcome>, context: ChannelHandlerContext) {
        parser.discardBuffered()
        replies.removeAll()
        tlsState = .handshaking(promise)
        tlsPeer = setup.peer
        do {
            let tls = try setup.makeHandler(certificateCheck)
            try context.pipeline.syncOperations.addHandler(tls, position: .first)
        } catch {
            fail(tlsFailure(error))
        }
    }

    private func armDeadline(_ timeout: TimeAmount, what: String) {
        deadline?.cancel()
        deadline = eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            self.deadline = nil
            self.fail(.timeout(what))
        }
    }
}
