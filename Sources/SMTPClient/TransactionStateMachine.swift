import SMTPCore

/// One mail transaction from the client side (RFC 5321 §3.3, RFC 2920): decides what to
/// send next from the replies received, and folds the replies into a ``DeliveryReport``.
/// Pure: the connection writes and reads, this type only decides.
struct TransactionStateMachine: Sendable {
    /// Something to put on the wire before waiting again.
    enum Output: Sendable, Hashable {
        case commands([ClientCommand])
        /// The dot-stuffed content with its terminating `.`.
        case content
        /// A lone `.`: the server said 354 though no recipient was accepted
        /// (RFC 2920 §3.1, RELIABILITY F4).
        case terminatorOnly
    }

    /// Which deadline the next wait uses.
    enum Wait: Sendable, Hashable {
        case command
        /// The reply to the final dot (RFC 5321 §4.5.3.2.6).
        case dataTermination
    }

    enum Next: Sendable, Hashable {
        case awaitReply(Wait)
        /// `serverClosing`: the server said 421 and is closing (RFC 5321 §3.8).
        /// `openTransaction`: MAIL was accepted but no final dot was answered, so the
        /// server may still hold the transaction and needs an RSET before reuse.
        case finished(DeliveryReport, serverClosing: Bool, openTransaction: Bool)
    }

    struct Step: Sendable, Hashable {
        var output: Output?
        var next: Next
    }

    private enum State: Sendable {
        case idle
        case mail
        case rcpt(Int)
        case data
        case dot
        case discardedDot
        case done
    }

    private let plan: TransactionPlan
    private let pipelining: Bool
    private var state = State.idle
    private var mailReply: SMTPReply?
    private var recipientReplies: [SMTPReply] = []

    init(plan: TransactionPlan, pipelining: Bool) {
        self.plan = plan
        self.pipelining = pipelining
        recipientReplies.reserveCapacity(plan.recipients.count)
    }

    private var mailAccepted: Bool { mailReply?.isPositive ?? false }
    private var anyRecipientAccepted: Bool { mailAccepted && recipientReplies.contains { $0.isPositive } }

    /// The first write: MAIL alone, or with PIPELINING the whole group MAIL, RCPT…, DATA
    /// (DATA may end a group, RFC 2920 §3.1).
    mutating func start() -> Step {
        precondition(isIdle, "transaction started twice")
        state = .mail
        if pipelining {
            return Step(output: .commands([plan.mail] + plan.recipients + [.data]), next: .awaitReply(.command))
        }
        return Step(output: .commands([plan.mail]), next: .awaitReply(.command))
    }

    private var isIdle: Bool {
        if case .idle = state { return true }
        return false
    }

    mutating func received(_ reply: SMTPReply) -> Step {
        if reply.code == 421 {
            return finishClosing(reply)
        }
        switch state {
        case .idle, .done:
            preconditionFailure("reply outside a transaction")

        case .mail:
            mailReply = reply
            if !pipelining, !reply.isPositive {
                return finish(dataReply: nil)
            }
            state = .rcpt(0)
            return Step(output: pipelining ? nil : .commands([plan.recipients[0]]), next: .awaitReply(.command))

        case .rcpt(let index):
            recipientReplies.append(reply)
            let nextIndex = index + 1
            if nextIndex < plan.recipients.count {
                state = .rcpt(nextIndex)
                return Step(output: pipelining ? nil : .commands([plan.recipients[nextIndex]]), next: .awaitReply(.command))
            }
            if pipelining {
                state = .data
                return Step(output: nil, next: .awaitReply(.command))
            }
            guard anyRecipientAccepted else { return finish(dataReply: nil) }
            state = .data
            return Step(output: .commands([.data]), next: .awaitReply(.command))

        case .data:
            if reply.code == 354 {
                if anyRecipientAccepted {
                    state = .dot
                    return Step(output: .content, next: .awaitReply(.dataTermination))
                }
                state = .discardedDot
                return Step(output: .terminatorOnly, next: .awaitReply(.dataTermination))
            }
            return finish(dataReply: anyRecipientAccepted ? reply : nil)

        case .dot:
            return finish(dataReply: reply, transactionClosed: true)

        case .discardedDot:
            return finish(dataReply: nil, transactionClosed: true)
        }
    }

    private mutating func finish(dataReply: SMTPReply?, transactionClosed: Bool = false) -> Step {
        state = .done
        let replies: [SMTPReply]
        if let mailReply, !mailReply.isPositive {
            replies = Array(repeating: mailReply, count: plan.recipients.count)
        } else {
            replies = recipientReplies
        }
        let report = DeliveryReport(recipientReplies: replies, dataReply: dataReply)
        return Step(output: nil, next: .finished(report, serverClosing: false, openTransaction: mailAccepted && !transactionClosed))
    }

    /// A 421 ends everything: recipients already refused keep their refusal; every other
    /// recipient gets the 421 (deferred), accepted ones included, as nothing was delivered.
    private mutating func finishClosing(_ reply: SMTPReply) -> Step {
        if case .dot = state {
            state = .done
            let report = DeliveryReport(recipientReplies: recipientReplies, dataReply: reply)
            return Step(output: nil, next: .finished(report, serverClosing: true, openTransaction: false))
        }
        state = .done
        var replies: [SMTPReply] = []
        for index in plan.recipients.indices {
            if mailAccepted, index < recipientReplies.count, !recipientReplies[index].isPositive {
                replies.append(recipientReplies[index])
            } else {
                replies.append(reply)
            }
        }
        let report = DeliveryReport(recipientReplies: replies, dataReply: nil)
        return Step(output: nil, next: .finished(report, serverClosing: true, openTransaction: false))
    }
}
