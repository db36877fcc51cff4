import NIOCore
import SMTPCore
import TollgateConfiguration
import TollgateSpool
import TollgateMetrics

/// Builds RFC 3464 delivery status notifications (`multipart/report`), sent with a
/// null sender (RFC 5321 §6.1; RFC 3461 for NOTIFY and RET).
public struct BounceBuilder: Sendable {
    public var hostname: String

    public init(hostname: String) {
        self.hostname = hostname
    }

    /// One recipient to report as failed.
    public struct Failure: Sendable, Hashable {
        public var recipient: SpoolRecipient
        /// The final reply, e.g. `550 5.1.1 no such user`.
        public var diagnostic: String
        public var remoteMTA: String?

        public init(recipient: SpoolRecipient, diagnostic: String, remoteMTA: String? = nil) {
            self.recipient = recipient
            self.diagnostic = diagnostic
            self.remoteMTA = remoteMTA
        }
    }

    /// Whether a DSN may be sent at all for `message`: never for a null sender or for
    /// Tollgate's own notifications (no bounce of a bounce).
    public static func mayBounce(_ message: SpoolMessage) -> Bool {
        !message.sender.isEmpty && !message.envelope.isBounce
    }

    /// The recipients whose NOTIFY allows a failure report (RFC 3461 §4.1: the default is FAILURE).
    public static func wantsFailureReport(_ r: SpoolRecipient) -> Bool {
        guard let notify = r.notify else { return true }
        return notify.contains("FAILURE")
    }

    public func build(for original: SpoolMessage, failures: [Failure], id: String, now: Double) -> SpoolMessage {
        let boundary = "\(id)/\(hostname)"
        var text = ""
        func line(_ s: String) { text += s + "\r\n" }
        line("From: Mail Delivery System <MAILER-DAEMON@\(hostname)>")
        line("To: <\(original.sender)>")
        line("Subject: Undelivered Mail Returned to Sender")
        line("Date: \(MessageDate.rfc5322(now))")
        line("Message-ID: <\(id).dsn@\(hostname)>")
        line("Auto-Submitted: auto-replied")
        line("MIME-Version: 1.0")
        line("Content-Type: multipart/report; report-type=delivery-status;")
        line("\tboundary=\"\(boundary)\"")
        line("Content-Transfer-Encoding: 8bit")
        line("")
        line("This is a MIME-encapsulated message.")
        line("")
        line("--\(boundary)")
        line("Content-Description: Notification")
        line("Content-Type: text/plain; charset=utf-8")
        line("")
        line("This is the mail system at host \(hostname).")
        line("")
        line("I'm sorry to have to inform you that your message could not")
        line("be delivered to one or more recipients. It's attached below.")
        line("")
        for f in failures {
            line("<\(Self.clean(f.recipient.address))>: \(Self.clean(f.diagnostic))")
        }
        line("")
        line("--\(boundary)")
        line("Content-Description: Delivery report")
        line("Content-Type: message/delivery-status")
        line("")
        line("Reporting-MTA: dns; \(hostname)")
        line("X-Tollgate-Queue-ID: \(original.id)")
        if let envid = original.envelope.envelopeID { line("Original-Envelope-Id: \(Self.clean(envid))") }
        line("Arrival-Date: \(MessageDate.rfc5322(original.createdAt))")
        for f in failures {
            line("")
            line("Final-Recipient: rfc822; \(Self.clean(f.recipient.address))")
            if let orcpt = f.recipient.originalRecipient { line("Original-Recipient: \(Self.clean(orcpt))") }
            line("Action: failed")
            line("Status: \(Self.status(of: f.diagnostic))")
            if let mta = f.remoteMTA { line("Remote-MTA: dns; \(Self.clean(mta))") }
            line("Diagnostic-Code: smtp; \(Self.clean(f.diagnostic))")
        }
        line("")
        line("--\(boundary)")
        // RET=HDRS, or a large original: return the headers only (RFC 3461 §4.3). So
        // too when the original cannot be converted to 7-bit (8-bit header fields): the
        // headers go as text, which quoted-printable can carry to any upstream, so the
        // bounce itself is always deliverable (RELIABILITY C16).
        let headersOnly = original.envelope.ret == "HDRS" || original.size > 256 * 1024
            || (original.envelope.eightBit && SevenBitDowngrade.downgrade(original.content) == nil)
        var body = ByteBuffer(string: text)
        if headersOnly {
            body.writeString("Content-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n")
            body.writeString(original.receivedHeader)
            var headers = Self.headerBlock(original.content)
            body.writeBuffer(&headers)
        } else {
            body.writeString("Content-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n")
            body.writeString(original.receivedHeader)
            body.writeImmutableBuffer(original.content)
        }
        if body.getInteger(at: body.writerIndex - 1, as: UInt8.self) != 10 { body.writeStaticString("\r\n") }
        body.writeString("\r\n--\(boundary)--\r\n")

        var envelope = SpoolEnvelope()
        envelope.isBounce = true
        envelope.eightBit = original.envelope.eightBit || body.readableBytesView.contains { $0 >= 0x80 }
        envelope.smtpUTF8 = original.sender.utf8.contains { $0 >= 0x80 }
        envelope.listener = "bounce"
        envelope.clientAddress = "127.0.0.1"
        envelope.department = original.envelope.department
        envelope.user = original.envelope.user
        var message = SpoolMessage(id: id, createdAt: now, sender: "", recipients: [SpoolRecipient(address: original.sender)], envelope: envelope, content: body, upstream: original.upstream)
        message.nextAttempt = now
        return message
    }

    /// The enhanced status code in a reply, or one derived from its class.
    static func status(of diagnostic: String) -> String {
        let parts = diagnostic.split(separator: " ")
        if parts.count > 1 {
            let candidate = parts[1]
            let fields = candidate.split(separator: ".")
            if fields.count == 3, fields.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) { return String(candidate) }
        }
        if let first = parts.first, first.hasPrefix("4") { return "4.0.0" }
        return "5.0.0"
    }

    static func clean(_ s: String) -> String {
        String(s.unicodeScalars.map { $0.value < 32 || $0.value == 127 ? " " : Character($0) }.prefix(900))
    }

    /// The header section of `content`, through the CRLF that ends its last field.
    static func headerBlock(_ content: ByteBuffer) -> ByteBuffer {
        let view = content.readableBytesView
        var i = view.startIndex
        while i + 3 < view.endIndex {
            if view[i] == 13, view[i + 1] == 10, view[i + 2] == 13, view[i + 3] == 10 {
                return content.getSlice(at: content.readerIndex, length: i + 2 - view.startIndex) ?? content
            }
            i += 1
        }
        return content
    }
}
