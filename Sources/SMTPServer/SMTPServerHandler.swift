import Logging
import NIOCore
import NIOSSL
import NIOTLS
import SMTPCore
import TollgatePolicy

/// Events the listener sends down a session's pipeline.
public enum SMTPServerEvent: Sendable {
    /// The server is stopping: finish the current transaction, then say 421.
    case drain
}

/// The NIO side of one SMTP session: frames bytes into command lines, DATA and BDAT
/// chunks, feeds them to ``SMTPSessionStateMachine`` and carries out its actions.
/// All protocol decisions live in the state machine; this type only does I/O.
public final class SMTPServerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = Never
    public typealias OutboundIn = Never
    public typealias OutboundOut = ByteBuffer

    /// Per-session timing limits (`limits.command_timeout`, `limits.data_timeout`).
    public struct Timeouts: Sendable {
        public var command: TimeAmount
        public var data: TimeAmount
        public init(command: TimeAmount, data: TimeAmount) {
            self.command = command
            self.data = data
        }
    }

    enum Mode {
        case command
        /// Skipping the rest of an over-long command line.
        case discardingLine
        case data(DataReceiver)
        case bdat(remaining: Int, size: Int, last: Bool, discard: Bool)
        /// Between the 220 to STARTTLS and the end of the handshake: plaintext is dropped.
        case startingTLS
        case closed
    }

    var machine: SMTPSessionStateMachine
    let delegate: any SMTPSessionDelegate
    let sslContext: NIOSSLContext?
    let timeouts: Timeouts
    var logger: Logger
    let sessionID: String
    let clientAddress: String

    var mode: Mode = .command
    var buffer = ByteBuffer()
    var busy = false
    var pendingRead = false
    var needsFlush = false
    var deadline: Scheduled<Void>?
    var rearmDeadline = true
    var facts = SessionFacts()
    var sessionTrace: [PolicyTraceEntry] = []
    var transactionTrace: [PolicyTraceEntry] = []
    var content: ByteBuffer?
    var bdatContent: ContentNormalizer?
    /// The context the pipeline saw at this transaction's data phase, if it ran.
    var dataPolicyContext: PolicyContext?

    public init(
        configuration: SMTPSessionConfiguration,
        delegate: any SMTPSessionDelegate,
        sslContext: NIOSSLContext?,
        implicitTLS: Bool,
        timeouts: Timeouts,
        sessionID: String,
        clientAddress: String,
        logger: Logger
    ) {
        self.machine = SMTPSessionStateMachine(configuration: configuration, tlsActive: implicitTLS)
        self.delegate = delegate
        self.sslContext = sslContext
        self.timeouts = timeouts
        self.sessionID = sessionID
        self.clientAddress = clientAddress
        var logger = logger
        logger[metadataKey: "smtp.session.id"] = .string(sessionID)
        logger[metadataKey: "client.address"] = .string(clientAddress)
        self.logger = logger
    }

    // MARK: - Channel events

    public func channelActive(context: ChannelHandlerContext) {
        logger.debug("session started")
        buffer = context.channel.allocator.buffer(capacity: 1024)
        perform(machine.connected(), context: context)
        armDeadlineIfNeeded(context: context)
        flushIfNeeded(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        if case .closed = mode {} else {
            logger.debug("client disconnected")
        }
        mode = .closed
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        switch mode {
        case .closed:
            return
        case .startingTLS:
            // RFC 3207 / CVE-2011-0411: nothing sent before the handshake may be
            // taken as a command after it.
            return
        default:
            buffer.writeBuffer(&bytes)
        }
        process(context: context)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded(context: context)
    }

    public func read(context: ChannelHandlerContext) {
        // Back-pressure: no more reads while a decision or a write to disk is pending,
        // or while a pipelined backlog waits.
        if busy || buffer.readableBytes > SMTPLimits.maxCommandLine * 32 {
            pendingRead = true
        } else {
            context.read()
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent, case .startingTLS = mode {
            buffer.clear()
            mode = .command
            logger.debug("STARTTLS handshake completed")
            perform(machine.tlsEstablished(), context: context)
            process(context: context)
            flushIfNeeded(context: context)
            return
        }
        if let smtpEvent = event as? SMTPServerEvent, case .drain = smtpEvent {
            perform(machine.shutdownRequested(), context: context)
            flushIfNeeded(context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("session error", metadata: ["error": "\(error)"])
        mode = .closed
        context.close(promise: nil)
    }

    // MARK: - Framing

    func process(context: ChannelHandlerContext) {
        loop: while !busy {
            switch mode {
            case .closed, .startingTLS:
                break loop
            case .discardingLine:
                guard let lf = buffer.readableBytesView.firstIndex(of: 10) else {
                    buffer.clear()
                    break loop
                }
                buffer.moveReaderIndex(to: lf + 1)
                mode = .command
            case .command:
                guard machine.acceptsCommands else { break loop }
                let view = buffer.readableBytesView
                let limit = machine.inAuthExchange ? SMTPLimits.maxAuthLine : SMTPLimits.maxCommandLine
                guard let lf = view.prefix(limit).firstIndex(of: 10) else {
                    if view.count >= limit {
                        buffer.clear()
                        mode = .discardingLine
                        perform(machine.lineTooLong(), context: context)
                    }
                    break loop
                }
                var lineEnd = lf
                if lineEnd > view.startIndex, view[lineEnd - 1] == 13 { lineEnd -= 1 }
                let line = Array(view[view.startIndex..<lineEnd])
                buffer.moveReaderIndex(to: lf + 1)
                rearmDeadline = true
                if violatesPipelining(line[...]) {
                    logger.notice("SMTP protocol synchronization error")
                    mode = .closed
                    perform(.replyAndClose(.syncError), context: context)
                    break loop
                }
                perform(machine.receivedLine(line[...]), context: context)
            case .data(var receiver):
                let done = receiver.consume(&buffer)
                mode = .data(receiver)
                guard done else {
                    buffer.discardReadBytes()
                    break loop
                }
                mode = .command
                rearmDeadline = true
                content = receiver.content
                if !machine.pipeliningNegotiated, buffer.readableBytes > 0 {
                    // RELIABILITY A2: commands in the same write as the final dot, without PIPELINING.
                    mode = .closed
                    perform(.replyAndClose(.syncError), context: context)
                    break loop
                }
                perform(machine.dataReceived(receiver.outcome), context: context)
            case .bdat(let remaining, let size, let last, let discard):
                let take = min(remaining, buffer.readableBytes)
                if take > 0 {
                    let chunk = buffer.readSlice(length: take)!
                    if !discard { bdatContent?.append(chunk) }
                }
                if remaining - take > 0 {
                    mode = .bdat(remaining: remaining - take, size: size, last: last, discard: discard)
                    buffer.discardReadBytes()
                    break loop
                }
                mode = .command
                rearmDeadline = true
                var outcome = DataReceiver.Outcome.ok
                if var normalizer = bdatContent, !discard {
                    if last {
                        normalizer.finish()
                        content = normalizer.content
                        bdatContent = nil
                    } else {
                        bdatContent = normalizer
                    }
                    outcome = normalizer.outcome
                }
                perform(machine.bdatChunkReceived(size: size, outcome: outcome), context: context)
            }
        }
        if !busy, pendingRead, buffer.readableBytes <= SMTPLimits.maxCommandLine * 32 {
            pendingRead = false
            context.read()
        }
        armDeadlineIfNeeded(context: context)
    }

    /// RFC 2920 §3.1: EHLO, DATA, VRFY, EXPN, TURN, QUIT and NOOP end a pipelined group,
    /// and a client that did not get PIPELINING may not pipeline at all.
    func violatesPipelining(_ line: ArraySlice<UInt8>) -> Bool {
        guard buffer.readableBytes > 0, !machine.inAuthExchange else { return false }
        if !machine.pipeliningNegotiated, machine.helo != nil { return true }
        let verb = String(decoding: line.prefix { $0 != 32 }.prefix(8), as: UTF8.self).uppercased()
        return ["EHLO", "HELO", "DATA", "VRFY", "EXPN", "TURN", "NOOP"].contains(verb)
    }

    // MARK: - Actions

    func perform(_ action: SMTPSessionStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .reply(let reply):
            write(reply, context: context)
        case .replyAndClose(let reply):
            write(reply, context: context)
            close(context: context)
        case .evaluatePolicy(let phase):
            evaluatePolicy(phase, context: context)
        case .verifyCredentials(let credentials):
            verify(credentials, context: context)
        case .startTLS(let reply):
            startTLS(reply, context: context)
        case .receiveData(let reply):
            content = nil
            mode = .data(DataReceiver(
                maxSize: maxMessageSize,
                bareNewline: machine.configuration.bareNewline,
                allocator: context.channel.allocator
            ))
            write(reply, context: context)
            armDeadline(timeouts.data, context: context)
            rearmDeadline = false
        case .receiveBDATChunk(let size, let last, let discard, let first):
            if first {
                bdatContent = ContentNormalizer(maxSize: maxMessageSize, bareNewline: machine.configuration.bareNewline, allocator: context.channel.allocator)
            }
            mode = .bdat(remaining: size, size: size, last: last, discard: discard)
            armDeadline(timeouts.data, context: context)
            rearmDeadline = false
        case .storeMessage(let transaction):
            store(transaction, context: context)
        }
    }

    /// The department's own size limit when it is smaller than the listener's.
    var maxMessageSize: Int {
        if let limit = facts.tags["max_message_size"].flatMap(Int.init) {
            return min(limit, machine.configuration.maxMessageSize)
        }
        return machine.configuration.maxMessageSize
    }

    func write(_ reply: SMTPReply, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var out = context.channel.allocator.buffer(capacity: 64)
        reply.write(to: &out)
        context.write(wrapOutboundOut(out), promise: nil)
        needsFlush = true
        if reply.code >= 400 {
            logger.info("refused", metadata: ["smtp.reply": "\(reply)"])
        }
    }

    func flushIfNeeded(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
    }

    func close(context: ChannelHandlerContext) {
        mode = .closed
        deadline?.cancel()
        deadline = nil
        flushIfNeeded(context: context)
        context.close(promise: nil)
    }

    func armDeadlineIfNeeded(context: ChannelHandlerContext) {
        guard rearmDeadline, !busy else { return }
        switch mode {
        case .command, .discardingLine:
            rearmDeadline = false
            armDeadline(timeouts.command, context: context)
        default:
            break
        }
    }

    /// A per-request deadline: it is set when Tollgate starts waiting and is not
    /// extended by bytes that trickle in, only by a complete command.
    func armDeadline(_ amount: TimeAmount, context: ChannelHandlerContext) {
        deadline?.cancel()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: amount) {
            let (handler, context) = bound.value
            guard !handler.busy else { return }
            if case .closed = handler.mode { return }
            handler.logger.info("session timed out")
            handler.perform(handler.machine.timedOut(), context: context)
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Seconds since 1970 from the system clock.
func wallClock() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
