import SMTPCore

/// Message content: DATA (RFC 5321 §4.1.1.4), BDAT (RFC 3030) and storing.
extension SMTPSessionStateMachine {
    /// RFC 5321 §6.3 loop detection, as Postfix's `hopcount_limit = 50`.
    static var maxHops: Int { 50 }

    /// The end of DATA was read.
    mutating func dataReceived(_ content: ReceivedContent) -> Action {
        guard case .receivingData(let tx) = state else { return .none }
        return contentComplete(tx, content)
    }

    /// A BDAT chunk was read; for the last one `content` holds the whole message.
    mutating func chunkReceived(size: Int, last: Bool, content: ReceivedContent?) -> Action {
        guard case .receivingChunk(let open, _, let refused) = state else { return .none }
        if let refused {
            state = last ? .idle : open.map { .transaction($0) } ?? .idle
            return .reply(refused)
        }
        guard let tx = open else {
            state = .idle
            return .reply(.badSequence)
        }
        guard last else {
            // Too large already: keep reading chunks to stay in step, refuse at the end.
            state = .transaction(tx)
            return .reply(SMTPReply(250, "2.0.0", "\(size) octets received"))
        }
        guard let content else {
            state = .idle
            return .reply(.badSequence)
        }
        return contentComplete(tx, content)
    }

    private mutating func contentComplete(_ transaction: Transaction<Annotations>, _ content: ReceivedContent) -> Action {
        if content.outcome == .tooLarge {
            lastSizeRefusal = SizeRefusal(size: content.size, limit: sizeLimit)
        }
        state = .idle
        if let refusal = content.outcome.reply {
            return finishTransaction(refusal)
        }
        // Lines over 998 octets are folded now, not at delivery: what the stages see
        // (and a DKIM stage signs) is what is stored and sent.
        var received = content.content
        if let folded = LineFolder.fold(received) { received = folded }
        let headers = MessageHeaders.parse(received)
        if headers.count(where: { $0.name.lowercased() == "received" }) >= Self.maxHops {
            return finishTransaction(SMTPReply(554, "5.4.6", "Error: too many hops (mail loop?)"))
        }
        var tx = transaction
        let size = content.size + received.readableBytes - content.content.readableBytes
        tx.message = ReceivedMessage(content: received, size: size, eightBit: content.eightBit, headers: headers)
        return decide(.data(tx))
    }

    /// The store's answer to ``Action/store(_:)``: the queue id, or `nil` on failure.
    public mutating func storeFinished(queueID: String?) -> Action {
        guard case .storing = state else { return .none }
        state = .idle
        guard let queueID else {
            return finishTransaction(.localError)
        }
        session.messagesAccepted += 1
        return finishTransaction(SMTPReply(250, "2.0.0", "Ok: queued as \(queueID)"))
    }

    /// Instead of the `354` of ``Action/receiveData(_:_:)``: the server cannot take
    /// content now (``ContentBudget``). The transaction stays open; the client may try
    /// DATA again, or RSET.
    public mutating func contentRefused(_ reply: SMTPReply) -> Action {
        guard case .receivingData(let tx) = state else { return .none }
        state = .transaction(tx)
        return .reply(reply)
    }

    mutating func data() -> Action {
        guard case .transaction(let tx) = state else { return protocolError(SMTPReply(503, "5.5.1", "Error: need MAIL command")) }
        guard !tx.usingBDAT else { return protocolError(SMTPReply(503, "5.5.1", "Error: DATA not allowed after BDAT")) }
        guard !tx.envelope.recipients.isEmpty else { return protocolError(SMTPReply(554, "5.5.1", "Error: no valid recipients")) }
        state = .receivingData(tx)
        return .receiveData(.startData, contentLimits)
    }

    mutating func bdat(size: Int, last: Bool) -> Action {
        // RFC 3030 §2: the chunk is read even when it is refused, to stay in step.
        var open: Transaction<Annotations>?
        if case .transaction(let tx) = state { open = tx }
        var refusal: SMTPReply?
        if !session.extended {
            refusal = SMTPReply(503, "5.5.1", "Error: BDAT requires EHLO")
        } else if let tx = open {
            if tx.envelope.recipients.isEmpty { refusal = SMTPReply(554, "5.5.1", "Error: no valid recipients") }
        } else {
            refusal = SMTPReply(503, "5.5.1", "Error: need MAIL command")
        }
        if refusal == nil {
            open?.usingBDAT = true
            open?.bdatChunks += 1
        }
        state = .receivingChunk(open, last: last, refused: refusal)
        return .receiveChunk(size: size, last: last, discard: refusal != nil, first: open?.bdatChunks == 1 && refusal == nil, contentLimits)
    }
}
