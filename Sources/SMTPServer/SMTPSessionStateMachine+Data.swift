import SMTPCore
import TollgatePolicy

/// Message content: DATA (RFC 5321 §4.1.1.4), BDAT (RFC 3030) and storing.
extension SMTPSessionStateMachine {
    /// The end of DATA was read; `outcome` says whether the content is acceptable.
    public mutating func dataReceived(_ outcome: DataReceiver.Outcome) -> Action {
        guard case .receivingData = state, let tx = transaction else { return .none }
        state = .ready
        if let refusal = outcome.reply {
            transaction = nil
            return finishTransaction(refusal)
        }
        state = .awaitingPolicy(.data(tx))
        return .evaluatePolicy(.data)
    }

    /// A BDAT chunk was read. For the last one, `outcome` covers the whole content.
    public mutating func bdatChunkReceived(size: Int, outcome: DataReceiver.Outcome) -> Action {
        guard case .receivingBDAT(let last, let refused) = state else { return .none }
        if let refused {
            state = .ready
            if last { transaction = nil }
            return .reply(refused)
        }
        if !last {
            if outcome == .tooLarge {
                // Keep reading chunks to stay in sync, refuse at the end.
                state = .ready
                return .reply(SMTPReply(250, "2.0.0", "\(size) octets received"))
            }
            state = .ready
            return .reply(SMTPReply(250, "2.0.0", "\(size) octets received"))
        }
        guard let tx = transaction else {
            state = .ready
            return .reply(.badSequence)
        }
        if let refusal = outcome.reply {
            state = .ready
            transaction = nil
            return finishTransaction(refusal)
        }
        state = .awaitingPolicy(.data(tx))
        return .evaluatePolicy(.data)
    }

    /// The spool's answer to ``Action/storeMessage(_:)``: the queue id, or a failure.
    public mutating func storeFinished(queueID: String?) -> Action {
        guard case .storing = state else { return .none }
        state = .ready
        transaction = nil
        guard let queueID else {
            return finishTransaction(.localError)
        }
        messagesAccepted += 1
        return finishTransaction(SMTPReply(250, "2.0.0", "Ok: queued as \(queueID)"))
    }

    mutating func data() -> Action {
        guard let tx = transaction else { return protocolError(SMTPReply(503, "5.5.1", "Error: need MAIL command")) }
        guard !tx.usingBDAT else { return protocolError(SMTPReply(503, "5.5.1", "Error: DATA not allowed after BDAT")) }
        guard !tx.recipients.isEmpty else { return protocolError(SMTPReply(554, "5.5.1", "Error: no valid recipients")) }
        state = .receivingData
        return .receiveData(.startData)
    }

    mutating func bdat(size: Int, last: Bool) -> Action {
        // RFC 3030 §2: the chunk is read even when it is refused, to stay in sync.
        var refusal: SMTPReply?
        if !extended {
            refusal = SMTPReply(503, "5.5.1", "Error: BDAT requires EHLO")
        } else if let tx = transaction {
            if tx.recipients.isEmpty { refusal = SMTPReply(554, "5.5.1", "Error: no valid recipients") }
        } else {
            refusal = SMTPReply(503, "5.5.1", "Error: need MAIL command")
        }
        if refusal == nil {
            transaction?.usingBDAT = true
            transaction?.bdatChunks += 1
        }
        state = .receivingBDAT(last: last, refused: refusal)
        return .receiveBDATChunk(size: size, last: last, discard: refusal != nil, first: transaction?.bdatChunks == 1)
    }
}
