import SMTPCore
import SMTPServer

/// Builds RFC 3464 delivery status notifications (`multipart/report`), sent with a
/// null sender (RFC 5321 §6.1; RFC 3461 for NOTIFY and RET).
public struct BounceBuilder: Sendable {
    public var hostname: String

    public init(hostname: String) {
        self.hostname = hostname
    }

    public struct Failure: Sendable {
        public var recipient: SpoolRecipient
        /// The final reply, e.g. `550 5.1.1 no such user`.
        public var diagnostic: String
        public var remoteMTA: String?
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
        line("Date: \(ReceivedHeader.rfc5322Date(now))")
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
        line("Arrival-Date: \(ReceivedHeader.rfc5322Date(original.createdAt))")
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
        // RET=HDRS, or a large original: return the headers only (RFC 3461 §4.3).
        let headersOnly = original.envelope.ret == "HDRS" || original.content.count > 256 * 1024
        var body = Array(text.utf8)
        if headersOnly {
            body += Array("Content-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n".utf8)
            body += Self.headerBlock(original.content)
        } else {
            body += Array("Content-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n".utf8)
            body += original.content
        }
        if body.last != 10 { body += [13, 10] }
        body += Array("\r\n--\(boundary)--\r\n".utf8)

        var envelope = SpoolEnvelope()
        envelope.isBounce = true
        envelope.eightBit = original.envelope.eightBit || body.contains { $0 >= 0x80 }
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

    static func headerBlock(_ content: [UInt8]) -> [UInt8] {
        var i = 0
        while i + 3 < content.count {
            if content[i] == 13, content[i + 1] == 10, content[i + 2] == 13, content[i + 3] == 10 {
                return Array(content[0..<(i + 2)])
            }
            i += 1
        }
        return content
    }
}
