import Foundation
import SMTPServer
import TollgatePolicy
import TollgatePipeline
import TollgateSpool
import TollgateConfiguration
import TollgateDelivery
import TollgateMetrics

extension SpoolMessage {
    /// The spool entry for a message a session accepted: its envelope, what the
    /// stages attached, and the content as received, with the `Received:`
    /// header Tollgate adds kept beside it (written first at delivery).
    init(_ request: StoreRequest<RelayAnnotations>, id: String, receivedAt: Double, hostname: String) {
        let session = request.session
        let tx = request.envelope
        let header = ReceivedHeader.make(
            helo: session.helo,
            clientAddress: session.clientAddress,
            clientName: session.clientName,
            hostname: hostname,
            protocolName: ReceivedHeader.protocolName(extended: session.extended, tls: session.tls, authenticated: session.authenticatedUser != nil),
            queueID: id,
            recipient: tx.recipients.count == 1 ? tx.recipients[0].mailbox.description : nil,
            date: receivedAt
        )
        let annotations = request.annotations
        // A message the stages changed: fields inserted at the top ride with
        // `Received:`; other changes write the content anew (SPEC §7).
        var prefix = ""
        var content = request.message.content
        var eightBit = request.message.eightBit
        if let changed = annotations.message {
            let stored = changed.stored(replacing: request.message.content)
            (prefix, content) = (stored.prefix, stored.content)
            if stored.rewritten { eightBit = content.readableBytesView.contains { $0 >= 0x80 } }
            eightBit = eightBit || prefix.utf8.contains { $0 >= 0x80 }
        }
        var envelope = SpoolEnvelope()
        envelope.eightBit = tx.parameters.body == .eightBitMIME || eightBit
        envelope.smtpUTF8 = tx.parameters.smtpUTF8
        envelope.ret = tx.parameters.ret
        envelope.envelopeID = tx.parameters.envelopeID
        envelope.listener = session.listener
        envelope.clientAddress = session.clientAddress
        envelope.helo = session.helo
        envelope.tls = session.tls
        envelope.authenticatedUser = session.authenticatedUser
        envelope.user = annotations.facts.user ?? session.authenticatedUser
        envelope.department = annotations.facts.department
        envelope.tags = annotations.facts.tags
        envelope.trace = annotations.trace.map {
            SpoolTraceEntry(phase: $0.phase, stage: $0.stage, verdict: $0.verdict, reason: $0.reason, milliseconds: $0.milliseconds, shadow: $0.shadow)
        }
        self.init(
            id: id,
            createdAt: receivedAt,
            sender: tx.sender.address,
            recipients: tx.recipients.map {
                SpoolRecipient(address: $0.mailbox.description, notify: $0.parameters.notify, originalRecipient: $0.parameters.originalRecipient)
            },
            envelope: envelope,
            receivedHeader: header + prefix,
            content: content,
            upstream: annotations.route
        )
    }
}

extension SpoolMessage {
    /// Applies the envelope changes data-phase stages asked for (a milter's
    /// CHGFROM/ADDRCPT/DELRCPT), in order. Returns the recipients asked to be removed
    /// that the message did not have (ignored, as sendmail does).
    mutating func apply(_ changes: [EnvelopeChange]) -> [String] {
        var missing: [String] = []
        for change in changes {
            switch change {
            case .changeSender(let address):
                sender = address
            case .addRecipient(let address):
                guard !recipients.contains(where: { $0.address.caseInsensitiveCompare(address) == .orderedSame }) else { continue }
                recipients.append(SpoolRecipient(address: address, notify: nil, originalRecipient: nil))
            case .removeRecipient(let address):
                let before = recipients.count
                recipients.removeAll { $0.address.caseInsensitiveCompare(address) == .orderedSame }
                if recipients.count == before { missing.append(address) }
            }
        }
        return missing
    }
}
