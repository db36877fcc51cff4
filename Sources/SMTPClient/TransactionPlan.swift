import NIOCore
import SMTPCore

/// The commands of one transaction, decided before anything is sent: every refusal
/// (RELIABILITY C16, C17, C18, F8) happens here, so a refused message leaves the
/// connection untouched.
struct TransactionPlan: Sendable, Hashable {
    var mail: ClientCommand
    var recipients: [ClientCommand]

    /// - Parameters:
    ///   - contentSize: the octets of the stored content.
    ///   - contentHasEightBit: whether the content has octets above 127.
    init(
        envelope: OutboundEnvelope,
        contentSize: Int,
        contentHasEightBit: Bool,
        capabilities: ServerCapabilities
    ) throws(SMTPClientError) {
        guard !envelope.recipients.isEmpty else { throw .invalidArgument("envelope without recipients") }
        guard envelope.recipients.count < SMTPClientLimits.maxQueuedReplies - 2 else {
            throw .invalidArgument("envelope with too many recipients")
        }

        let eightBit = envelope.eightBit || contentHasEightBit
        let needsUTF8 = Self.needsSMTPUTF8(envelope)
        let size = envelope.size > 0 ? envelope.size : contentSize

        if needsUTF8, !capabilities.smtpUTF8 { throw .smtputf8NotSupported }
        if eightBit, !capabilities.eightBitMIME { throw .eightBitNotSupported }
        if let limit = capabilities.maxSize, size > limit { throw .messageTooLarge(limit: limit) }

        var parameters: [String] = []
        if capabilities.size { parameters.append("SIZE=\(size)") }
        if eightBit { parameters.append("BODY=8BITMIME") }
        if needsUTF8 { parameters.append("SMTPUTF8") }
        if capabilities.dsn {
            if let ret = envelope.ret { parameters.append("RET=\(ret)") }
            if let envid = envelope.envelopeID { parameters.append("ENVID=\(envid)") }
        }
        mail = try ClientCommand.mail(from: envelope.sender, parameters: parameters)

        recipients = []
        recipients.reserveCapacity(envelope.recipients.count)
        for (index, recipient) in envelope.recipients.enumerated() {
            var rcptParameters: [String] = []
            if capabilities.dsn {
                if index < envelope.notify.count, let notify = envelope.notify[index], !notify.isEmpty {
                    rcptParameters.append("NOTIFY=\(notify.joined(separator: ","))")
                }
                if index < envelope.orcpt.count, let orcpt = envelope.orcpt[index] {
                    rcptParameters.append("ORCPT=\(orcpt)")
                }
            }
            recipients.append(try ClientCommand.rcpt(to: recipient, parameters: rcptParameters))
        }
    }
}

extension TransactionPlan {
    /// Whether the envelope needs the SMTPUTF8 parameter (RFC 6531).
    static func needsSMTPUTF8(_ envelope: OutboundEnvelope) -> Bool {
        envelope.smtpUTF8 || envelope.sender.utf8.contains { $0 >= 0x80 }
            || envelope.recipients.contains { $0.utf8.contains { $0 >= 0x80 } }
    }
}
