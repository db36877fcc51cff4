import Logging
import NIOCore
import NIOSSL
import SMTPCore
import TollgatePolicy

/// The steps that leave the event loop — policy decisions, credential checks,
/// storing — and STARTTLS. Reads are paused while one runs.
extension SMTPServerHandler {
    /// What stages see at `phase`. At `data` the headers are parsed unless
    /// `headers` is false.
    func policyContext(_ phase: PolicyPhase, headers: Bool = true) -> PolicyContext {
        let tx = machine.transactionUnderDecision
        var context = PolicyContext(
            phase: phase,
            sessionID: sessionID,
            listener: machine.configuration.listenerName,
            clientAddress: clientAddress,
            helo: machine.helo,
            tls: machine.tlsActive,
            authenticatedUser: machine.authenticatedUser,
            sender: tx?.sender.address,
            recipients: tx?.recipients.map { $0.mailbox.normalized } ?? [],
            recipient: machine.pendingRecipient?.normalized,
            facts: facts
        )
        if phase == .data, let content {
            context.messageSize = content.readableBytes
            if headers { context.headers = MessageHeaders.parse(content) }
        }
        return context
    }

    /// Runs `work` off the event loop, then `resume` back on it, with reads paused.
    func suspend<T: Sendable>(
        context: ChannelHandlerContext,
        _ work: @escaping @Sendable () async -> T,
        resume: @escaping (SMTPServerHandler, ChannelHandlerContext, T) -> Void
    ) {
        busy = true
        deadline?.cancel()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let resumeBound = NIOLoopBound(resume, eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask(work).whenSuccess { value in
            let (handler, context) = bound.value
            handler.busy = false
            if case .closed = handler.mode { return }
            handler.rearmDeadline = true
            resumeBound.value(handler, context, value)
            handler.process(context: context)
            handler.flushIfNeeded(context: context)
        }
    }

    func evaluatePolicy(_ phase: PolicyPhase, context: ChannelHandlerContext) {
        if phase == .data, let refusal = hopCountRefusal() {
            perform(machine.policyDecided(.reject(refusal)), context: context)
            return
        }
        if phase == .mail { transactionTrace = [] }
        guard delegate.needsEvaluation(phase) else {
            perform(machine.policyDecided(.continue), context: context)
            return
        }
        let policyContext = policyContext(phase)
        if phase == .data { dataPolicyContext = policyContext }
        let delegate = self.delegate
        suspend(context: context, { await delegate.evaluate(policyContext) }) { handler, context, outcome in
            handler.facts.merge(outcome.facts)
            handler.record(outcome.trace, phase: phase)
            handler.perform(handler.machine.policyDecided(outcome.verdict), context: context)
        }
    }

    func record(_ trace: [PolicyTraceEntry], phase: PolicyPhase) {
        switch phase {
        case .connect, .helo, .starttls, .auth: sessionTrace += trace
        default: transactionTrace += trace
        }
    }

    /// RFC 5321 §6.3 loop detection, as Postfix's `hopcount_limit = 50`.
    func hopCountRefusal() -> PolicyReply? {
        guard let content else { return nil }
        let hops = MessageHeaders.parse(content).filter { $0.name.lowercased() == "received" }.count
        return hops >= 50 ? PolicyReply(code: 554, enhancedCode: "5.4.6", text: "Error: too many hops (mail loop?)") : nil
    }

    func verify(_ credentials: AuthCredentials, context: ChannelHandlerContext) {
        let policyContext = policyContext(.auth)
        let delegate = self.delegate
        suspend(context: context, { await delegate.authenticate(credentials, context: policyContext) }) { handler, context, result in
            let (outcome, trace) = result
            handler.sessionTrace += trace
            switch outcome {
            case .success(let facts):
                handler.facts.merge(facts)
                handler.logger.info("authenticated", metadata: ["smtp.auth.user": "\(facts.user ?? credentials.username)"])
            case .failure(let reason):
                handler.logger.notice("authentication failed", metadata: ["smtp.auth.user": "\(credentials.username)", "reason": "\(reason)"])
            case .temporaryFailure(let reason):
                handler.logger.warning("authentication unavailable", metadata: ["reason": "\(reason)"])
            case .notHandled:
                handler.logger.notice("no stage verified the credentials", metadata: ["smtp.auth.user": "\(credentials.username)"])
            }
            handler.perform(handler.machine.authenticationFinished(outcome), context: context)
        }
    }

    func startTLS(_ reply: SMTPReply, context: ChannelHandlerContext) {
        guard let sslContext else {
            perform(.reply(SMTPReply(454, "4.7.0", "TLS not available due to local problem")), context: context)
            return
        }
        // Everything pipelined after STARTTLS is dropped (CVE-2011-0411).
        buffer.clear()
        mode = .startingTLS
        var out = context.channel.allocator.buffer(capacity: 64)
        reply.write(to: &out)
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(out), promise: promise)
        needsFlush = false
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        promise.futureResult.whenComplete { result in
            let (handler, context) = bound.value
            guard case .success = result, case .startingTLS = handler.mode else { return }
            handler.buffer.clear()
            let tls = NIOSSLServerHandler(context: sslContext)
            do {
                try context.pipeline.syncOperations.addHandler(tls, position: .first)
            } catch {
                handler.close(context: context)
            }
        }
    }

    func store(_ transaction: Transaction, context: ChannelHandlerContext) {
        guard var body = content else {
            perform(machine.storeFinished(queueID: nil), context: context)
            return
        }
        // What stages are told once the message is queued: this transaction's data
        // phase (reused if the pipeline saw it), with the facts as they are now.
        var accepted = dataPolicyContext ?? policyContext(.data, headers: false)
        accepted.facts = facts
        let acceptedContext = accepted
        dataPolicyContext = nil
        content = nil
        let queueID = delegate.makeQueueID()
        let receivedAt = wallClock()
        let header = ReceivedHeader.make(
            helo: machine.helo,
            clientAddress: clientAddress,
            hostname: machine.configuration.hostname,
            protocolName: ReceivedHeader.protocolName(extended: machine.extended, tls: machine.tlsActive, authenticated: machine.authenticatedUser != nil),
            queueID: queueID,
            recipient: transaction.recipients.count == 1 ? transaction.recipients[0].mailbox.description : nil,
            date: receivedAt
        )
        var full = context.channel.allocator.buffer(capacity: header.utf8.count + body.readableBytes)
        full.writeString(header)
        full.writeBuffer(&body)
        let message = ReceivedMessage(
            queueID: queueID,
            transaction: transaction,
            content: full,
            sessionID: sessionID,
            listener: machine.configuration.listenerName,
            clientAddress: clientAddress,
            helo: machine.helo,
            tls: machine.tlsActive,
            authenticatedUser: machine.authenticatedUser,
            facts: facts,
            trace: sessionTrace + transactionTrace,
            receivedAt: receivedAt
        )
        let delegate = self.delegate
        let logger = self.logger
        suspend(context: context, { () async -> Bool in
            do {
                try await delegate.store(message)
                return true
            } catch {
                logger.error("could not store message", metadata: ["queue.id": "\(queueID)", "error": "\(error)"])
                return false
            }
        }) { handler, context, stored in
            handler.transactionTrace = []
            if stored {
                handler.logger.info(
                    "message accepted",
                    metadata: [
                        "queue.id": "\(queueID)",
                        "smtp.mail.from": "\(transaction.sender)",
                        "smtp.rcpt.count": "\(transaction.recipients.count)",
                        "message.size": "\(message.content.readableBytes)",
                        "policy.trace": "\(message.trace.map { "\($0.phase)/\($0.stage)=\($0.verdict)" }.joined(separator: " "))",
                        "policy.department": "\(message.facts.department ?? "-")",
                    ]
                )
                Task { await delegate.messageAccepted(message, context: acceptedContext) }
            }
            handler.perform(handler.machine.storeFinished(queueID: stored ? queueID : nil), context: context)
        }
    }
}
