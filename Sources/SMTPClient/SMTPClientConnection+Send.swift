import NIOConcurrencyHelpers
import Logging
import NIOCore
import SMTPCore

extension SMTPClientConnection {
    /// Runs one mail transaction: MAIL FROM, RCPT TO per recipient, DATA and the content
    /// (RFC 5321 §3.3), as one pipelined group when the server offers PIPELINING
    /// (RFC 2920).
    ///
    /// Refused before anything is sent: 8-bit content to a server without 8BITMIME,
    /// an envelope needing SMTPUTF8 to a server without it, a message over the server's
    /// SIZE, and any argument containing CR, LF or NUL.
    ///
    /// - Parameters:
    ///   - content: the stored message; dot-stuffed, CRLF-canonicalised and folded at 998
    ///     octets by `DataEncoder` on the way out.
    ///   - prefix: header lines sent before `content` (the relay's `Received:`), so the
    ///     two are never copied into one buffer.
    /// - Returns: the server's answers; see ``DeliveryReport/outcome(forRecipientAt:)``.
    /// - Throws: ``SMTPClientError``. A connection lost or timed out before the final
    ///   dot's reply is a temporary failure for every recipient (RFC 5321 §3.8: 451).
    public func send(_ envelope: OutboundEnvelope, content: ByteBuffer, prefix: String = "") async throws -> DeliveryReport {
        var envelope = envelope
        var content = content
        // The relay's envelopes say it already (the framer saw every byte); the scan
        // only guards callers that do not.
        var eightBit = envelope.eightBit || content.containsEightBit || prefix.utf8.contains { $0 >= 0x80 }
        // (An envelope the server cannot take at all is refused by the plan as before.)
        if eightBit, !serverCapabilities.eightBitMIME, serverCapabilities.smtpUTF8 || !TransactionPlan.needsSMTPUTF8(envelope) {
            // RELIABILITY C16: 8-bit text to a 7-bit server goes as quoted-printable, as
            // Postfix sends it; only 8-bit in a header cannot be converted.
            guard !prefix.utf8.contains(where: { $0 >= 0x80 }), let converted = SevenBitDowngrade.downgrade(content) else {
                throw SMTPClientError.eightBitNotSupported
            }
            logger.debug("8-bit content converted to quoted-printable: the upstream lacks 8BITMIME", metadata: ["message.size": "\(content.readableBytes)", "message.converted_size": "\(converted.readableBytes)"])
            content = converted
            envelope.eightBit = false
            // SIZE= announces what is sent: quoted-printable is larger than the original.
            if envelope.size > 0 { envelope.size = prefix.utf8.count + converted.readableBytes }
            eightBit = false
        }
        let plan = try TransactionPlan(
            envelope: envelope,
            contentSize: prefix.utf8.count + content.readableBytes,
            contentHasEightBit: eightBit,
            capabilities: serverCapabilities
        )
        try acquire()
        defer { release() }
        guard await upstream.isIdleAndHealthy else {
            markBroken(SMTPClientError.connectionClosed)
            throw SMTPClientError.connectionClosed
        }
        do {
            if state.withLockedValue({ $0.openTransaction }) {
                try await resetExchange()
            }
            return try await run(plan, content: content, prefix: prefix)
        } catch {
            markBroken(error)
            throw error
        }
    }

    private func run(_ plan: TransactionPlan, content: ByteBuffer, prefix: String) async throws(SMTPClientError) -> DeliveryReport {
        var machine = TransactionStateMachine(plan: plan, pipelining: serverCapabilities.pipelining)
        var step = machine.start()
        let contentWritten = NIOLockedValueBox(false)
        while true {
            switch step.output {
            case .commands(let commands):
                upstream.send(commands)
            case .content:
                upstream.write(DataEncoder.encode(content, prefix: prefix), written: contentWritten)
            case .terminatorOnly:
                upstream.write(ByteBuffer(string: ".\r\n"), written: contentWritten)
            case nil:
                break
            }
            switch step.next {
            case .awaitReply(.command):
                step = machine.received(try await upstream.read(timeout: configuration.commandTimeout, waitingFor: "transaction reply"))
            case .awaitReply(.dataTermination):
                do {
                    step = machine.received(try await upstream.read(timeout: configuration.dataTimeout, waitingFor: "reply to the final dot"))
                } catch {
                    if contentWritten.withLockedValue({ $0 }) {
                        // RELIABILITY F6: the duplicate window.
                        logger.warning("no reply after the final dot; the message may be delivered twice", metadata: ["error.message": "\(error)"])
                    } else {
                        // F6d: the upstream stopped reading; it never saw the final dot.
                        logger.notice("the upstream stopped taking the content before its end", metadata: ["error.message": "\(error)"])
                    }
                    throw error
                }
            case .finished(let report, let serverClosing, let openTransaction):
                if serverClosing {
                    logger.info("upstream closing the session mid-transaction")
                    markBroken(SMTPClientError.connectionClosed)
                } else {
                    state.withLockedValue { $0.openTransaction = openTransaction }
                }
                return report
            }
        }
    }
}
