import Logging
import NIOCore
import NIOSSL
import NIOTLS
import SMTPCore
import TLSFailureText

/// Events the listener sends down a session's pipeline.
public enum SMTPServerEvent: Sendable {
    /// The server is stopping: finish the current transaction, then say 421.
    case drain
    /// The drain deadline passed: say `421 4.3.2` now and close.
    case drainDeadline
}

/// Per-session timing limits (`limits.command_timeout`, `limits.data_timeout`,
/// `limits.stress_command_timeout`).
public struct SMTPTimeouts: Sendable {
    public var command: TimeAmount
    public var data: TimeAmount
    /// The wait for a command while the listener is under stress (Postfix's
    /// `smtpd_timeout = ${stress?10}${stress:300}`): idle sessions then give their
    /// place to new ones sooner.
    public var stressedCommand: TimeAmount

    public init(command: TimeAmount, data: TimeAmount, stressedCommand: TimeAmount? = nil) {
        self.command = command
        self.data = data
        self.stressedCommand = min(stressedCommand ?? command, command)
    }
}

/// The NIO side of one SMTP session: feeds the bytes to ``SMTPFramer``, the frames to
/// ``SMTPSessionStateMachine``, and carries out the machine's actions — writes,
/// closes, TLS, deadlines and the delegate's asynchronous steps. It makes no protocol
/// decision of its own.
public final class SMTPServerHandler<Delegate: SMTPSessionDelegate>: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = Never
    public typealias OutboundIn = Never
    public typealias OutboundOut = ByteBuffer
    typealias Machine = SMTPSessionStateMachine<Delegate.Annotations>

    /// Reading stops while this much is buffered and unframed (a pipelined backlog).
    static var maxBuffered: Int { SMTPLimits.maxCommandLine * 32 }

    var machine: Machine
    var framer = SMTPFramer()
    let delegate: Delegate
    let sslContext: NIOSSLContext?
    /// Failed logins per client across sessions; nil: not counted.
    let authFailures: AuthFailureTracker?
    /// Looks up the client's name before the greeting; nil: not looked up.
    let reverseDNS: ReverseDNS?
    /// Memory for content shared by all sessions; nil: not limited.
    let contentBudget: ContentBudget?
    /// What this session has counted against ``contentBudget``.
    var heldContent = 0
    /// The listener's counters of handshakes and bytes; nil: not counted.
    let statistics: ListenerStatistics?
    /// ``SMTPSessionDelegate/sessionOpened(sessionID:)`` was called (so closing is told too).
    var opened = false
    /// A TLS handshake has begun and not yet finished.
    var handshaking = false
    let clientAddress: String
    let timeouts: SMTPTimeouts
    /// Whether the listener is under stress now (most of its session slots taken).
    let stressed: @Sendable () -> Bool
    let logger: Logger
    /// A step runs off the event loop (a decision, a verification, a store): reads wait.
    var busy = false
    var closed = false
    var pendingRead = false
    var needsFlush = false
    var deadline: Scheduled<Void>?
    /// Set when a new wait for a command begins.
    var rearmDeadline = true

    public init(
        configuration: SMTPSessionConfiguration,
        delegate: Delegate,
        sslContext: NIOSSLContext?,
        implicitTLS: Bool,
        timeouts: SMTPTimeouts,
        sessionID: String,
        clientAddress: String,
        authFailures: AuthFailureTracker? = nil,
        reverseDNS: ReverseDNS? = nil,
        contentBudget: ContentBudget? = nil,
        stressed: @escaping @Sendable () -> Bool = { false },
        statistics: ListenerStatistics? = nil,
        logger: Logger
    ) {
        self.machine = Machine(configuration: configuration, sessionID: sessionID, clientAddress: clientAddress, tlsActive: implicitTLS)
        self.delegate = delegate
        self.sslContext = sslContext
        self.authFailures = authFailures
        self.reverseDNS = reverseDNS
        self.contentBudget = contentBudget
        self.statistics = statistics
        self.handshaking = implicitTLS
        self.clientAddress = clientAddress
        self.timeouts = timeouts
        self.stressed = stressed
        var logger = logger
        logger[metadataKey: "smtp.session.id"] = .string(sessionID)
        logger[metadataKey: "client.address"] = .string(clientAddress)
        self.logger = logger
    }

    // MARK: - Channel events

    public func channelActive(context: ChannelHandlerContext) {
        logger.debug("session started")
        opened = true
        delegate.sessionOpened(sessionID: machine.session.id)
        framer = SMTPFramer(allocator: context.channel.allocator)
        context.fireChannelActive()
        let local = context.channel.localAddress
        let facts = ConnectionFacts(clientPort: context.channel.remoteAddress?.port, serverAddress: local?.ipAddress, serverPort: local?.port)
        guard let reverseDNS else {
            perform(machine.connected(facts), context: context)
            armDeadlineIfNeeded(context: context)
            flushIfNeeded(context: context)
            return
        }
        // The greeting waits for the client's name, at most the lookup's timeout.
        let address = clientAddress
        let eventLoop = context.eventLoop
        suspend(context: context, { await reverseDNS.names(for: address, eventLoop: eventLoop) }) { handler, context, names in
            var facts = facts
            (facts.clientName, facts.clientPTR) = (names.name, names.ptr)
            handler.perform(handler.machine.connected(facts), context: context)
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        tlsHandshakeEnded(succeeded: false)
        cancelDeadline()
        if !closed { logger.debug("client disconnected") }
        closed = true
        releaseContentIfDone()
        if opened { delegate.sessionClosed(sessionID: machine.session.id) }
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        var bytes = unwrapInboundIn(data)
        if let statistics {
            let n = bytes.readableBytes
            statistics.record { $0.bytesIn += n }
        }
        if let contentBudget, machine.holdsContent {
            heldContent += bytes.readableBytes
            contentBudget.add(bytes.readableBytes)
        }
        framer.append(&bytes)
        process(context: context)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded(context: context)
    }

    public func read(context: ChannelHandlerContext) {
        // Back-pressure: no reads while a step runs or a pipelined backlog waits.
        if busy || framer.bufferedBytes > Self.maxBuffered {
            pendingRead = true
        } else {
            context.read()
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        var negotiated: TLSSessionFacts?
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls {
            tlsHandshakeEnded(succeeded: true)
            negotiated = (try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)).flatMap(TLSSessionFacts.read)
            if !framer.ignoresInput { machine.implicitTLSEstablished(negotiated) }
        }
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls, framer.ignoresInput, !closed {
            logger.debug("STARTTLS handshake completed")
            framer.resumeCommands()
            rearmDeadline = true
            perform(machine.tlsEstablished(negotiated), context: context)
            process(context: context)
            flushIfNeeded(context: context)
            return
        }
        if let event = event as? SMTPServerEvent {
            switch event {
            case .drain: perform(machine.shutdownRequested(), context: context)
            case .drainDeadline: perform(machine.drainDeadlinePassed(), context: context)
            }
            flushIfNeeded(context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if handshaking {
            tlsHandshakeEnded(succeeded: false, error: error)
        } else {
            logger.debug("session error", metadata: ["error.message": "\(Self.sessionErrorText(error))"])
        }
        close(context: context)
    }

    /// A connection's error after the handshake, in words (`connection reset by peer`).
    static func sessionErrorText(_ error: any Error) -> String {
        if let error = error as? IOError { return "connection error: " + TLSFailureText.errnoText(error.errnoCode) }
        if let error = error as? NIOSSLError, case .uncleanShutdown = error { return "the client closed the connection without ending TLS" }
        if error is NIOSSLError || error is BoringSSLError { return "TLS error: " + TLSFailureText.describe(error, peer: .client, certificate: nil) }
        return "\(error)".split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    // MARK: - Frames

    func process(context: ChannelHandlerContext) {
        while !busy, !closed, machine.acceptsCommands || machine.acceptsContent,
            let frame = framer.next(lineLimit: machine.lineLimit)
        {
            rearmDeadline = true
            perform(machine.received(frame, pipelined: framer.bufferedBytes > 0), context: context)
        }
        releaseContentIfDone()
        if !busy, pendingRead, framer.bufferedBytes <= Self.maxBuffered {
            pendingRead = false
            context.read()
        }
        armDeadlineIfNeeded(context: context)
    }

    // MARK: - Actions

    func perform(_ action: Machine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .reply(let reply):
            write(reply, context: context)
        case .replyAndClose(let reply):
            write(reply, context: context)
            close(context: context)
        case .evaluatePolicy(let request):
            guard delegate.needsDecision(request.phase) else {
                perform(machine.policyDecided(.proceed), context: context)
                return
            }
            let delegate = self.delegate
            suspend(context: context, { await delegate.decide(request) }) { handler, context, decision in
                handler.perform(handler.machine.policyDecided(decision), context: context)
            }
        case .verifyCredentials(let credentials, let request):
            if let authFailures, authFailures.isBlocked(clientAddress) {
                logger.notice("AUTH refused: too many failed logins from this client")
                perform(machine.authenticationThrottled(), context: context)
                return
            }
            let delegate = self.delegate
            suspend(context: context, { await delegate.authenticate(credentials, request) }) { handler, context, result in
                if case .failure = result.outcome { handler.authFailures?.recordFailure(handler.clientAddress) }
                handler.perform(handler.machine.authenticationFinished(result), context: context)
            }
        case .startTLS(let reply):
            startTLS(reply, context: context)
        case .receiveData(let reply, let limits):
            if let contentBudget, contentBudget.isExhausted {
                logger.notice("DATA refused: the memory for message content is used up", metadata: ["content.bytes": "\(contentBudget.bytesInUse)"])
                perform(machine.contentRefused(SMTPReply(451, "4.3.0", "Error: server busy, try again later")), context: context)
                return
            }
            framer.expectData(limits, allocator: context.channel.allocator)
            write(reply, context: context)
            armDeadline(timeouts.data, context: context)
        case .receiveChunk(let size, let last, let discard, let first, let limits):
            framer.expectChunk(size: size, last: last, discard: discard, first: first, limits: limits, allocator: context.channel.allocator)
            armDeadline(timeouts.data, context: context)
        case .store(let request):
            let delegate = self.delegate
            let logger = self.logger
            suspend(context: context, { () async -> String? in
                do {
                    return try await delegate.store(request)
                } catch {
                    logger.error("could not store message", metadata: ["error.message": "\(error)"])
                    return nil
                }
            }) { handler, context, queueID in
                handler.perform(handler.machine.storeFinished(queueID: queueID), context: context)
            }
        }
    }

    /// Runs `work` off the event loop, then `resume` back on it, with reads paused.
    func suspend<T: Sendable>(
        context: ChannelHandlerContext,
        _ work: @escaping @Sendable () async -> T,
        resume: @escaping (SMTPServerHandler, ChannelHandlerContext, T) -> Void
    ) {
        busy = true
        cancelDeadline()
        let bound = NIOLoopBound((self, context, resume), eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask(work).whenSuccess { value in
            let (handler, context, resume) = bound.value
            handler.busy = false
            guard !handler.closed else { return }
            handler.rearmDeadline = true
            resume(handler, context, value)
            handler.process(context: context)
            handler.flushIfNeeded(context: context)
        }
    }

    func startTLS(_ reply: SMTPReply, context: ChannelHandlerContext) {
        guard let sslContext else {
            perform(machine.tlsUnavailable(), context: context)
            return
        }
        // Everything pipelined after STARTTLS is dropped (CVE-2011-0411).
        framer.ignoreInput()
        var out = context.channel.allocator.buffer(capacity: 64)
        reply.write(to: &out)
        needsFlush = false
        // The handshake gets the command deadline too: a client that stalls it is cut off.
        armDeadline(commandTimeout, context: context)
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { result in
            let (handler, context) = bound.value
            guard case .success = result, !handler.closed else { return }
            do {
                handler.handshaking = true
                try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext), position: .first)
            } catch {
                handler.close(context: context)
            }
        }
    }

    /// Counts a handshake once, when it completes, fails or the client goes away.
    /// A failure is logged at `info` with why, in words (`client does not speak TLS
    /// (wrong version number)`); a client that leaves mid-handshake closed it.
    func tlsHandshakeEnded(succeeded: Bool, error: (any Error)? = nil) {
        guard handshaking else { return }
        handshaking = false
        if succeeded {
            statistics?.record { $0.tlsHandshakes += 1 }
        } else {
            let reason = TLSFailureText.describe(error ?? ChannelError.eof, peer: .client, certificate: nil)
            logger.info("TLS handshake failed", metadata: ["error.message": "\(reason)"])
            statistics?.record { $0.tlsFailures += 1 }
        }
    }

    // MARK: - I/O

    func write(_ reply: SMTPReply, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var out = context.channel.allocator.buffer(capacity: 64)
        reply.write(to: &out)
        if let statistics {
            let n = out.readableBytes
            statistics.record { $0.bytesOut += n }
        }
        context.write(wrapOutboundOut(out), promise: nil)
        needsFlush = true
        if reply.code >= 400 {
            if let statistics {
                let (code, reason) = ListenerStatistics.refusalClass(reply)
                statistics.record { $0.refusals[code + "/" + reason, default: 0] += 1 }
            }
            var metadata: Logger.Metadata = ["smtp.reply": "\(reply)"]
            if reply.code == 552, let tooLarge = machine.takeSizeRefusal() {
                metadata["message.size"] = "\(tooLarge.size)"
                metadata["limit.bytes"] = "\(tooLarge.limit.bytes)"
                metadata["limit.source"] = "\(tooLarge.limit.source)"
            }
            logger.info("refused", metadata: metadata)
        }
    }

    func flushIfNeeded(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
    }

    /// Gives back what this session counted once it holds no content any more.
    func releaseContentIfDone() {
        guard heldContent > 0, closed || !machine.holdsContent else { return }
        contentBudget?.release(heldContent)
        heldContent = 0
    }

    func close(context: ChannelHandlerContext) {
        guard !closed else { return }
        closed = true
        releaseContentIfDone()
        cancelDeadline()
        flushIfNeeded(context: context)
        context.close(promise: nil)
    }

    // MARK: - Deadlines

    func cancelDeadline() {
        deadline?.cancel()
        deadline = nil
    }

    func armDeadlineIfNeeded(context: ChannelHandlerContext) {
        guard rearmDeadline, !busy, !closed, machine.acceptsCommands else { return }
        rearmDeadline = false
        armDeadline(commandTimeout, context: context)
    }

    /// The wait for the next command: shorter while the listener is under stress.
    var commandTimeout: TimeAmount {
        timeouts.stressedCommand < timeouts.command && stressed() ? timeouts.stressedCommand : timeouts.command
    }

    /// A per-request deadline: set when Tollgate starts waiting, not extended by bytes
    /// that trickle in, only by a complete command or content.
    func armDeadline(_ amount: TimeAmount, context: ChannelHandlerContext) {
        cancelDeadline()
        rearmDeadline = false
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: amount) {
            let (handler, context) = bound.value
            guard !handler.busy, !handler.closed else { return }
            handler.logger.info("session timed out")
            handler.perform(handler.machine.timedOut(), context: context)
        }
    }
}
