import Logging
import NIOCore
import TollgateConfiguration
import TollgateDelivery
import TollgateSpool

/// Messages and loggers for spool and delivery tests.
public enum SpoolFixtures {
    /// A logger that discards everything.
    public static let quietLogger = Logger(label: "tollgate.test") { _ in SwiftLogNoOpLogHandler() }

    /// A message due at `now`, from `sender` to `recipients`, with a small body.
    public static func message(
        id: String,
        from sender: String = "alice@example.com",
        to recipients: [String] = ["bob@example.net"],
        notify: [String]? = nil,
        now: Double,
        header: String = "",
        body: String = "Subject: test\r\n\r\nhello\r\n"
    ) -> SpoolMessage {
        SpoolMessage(
            id: id, createdAt: now, sender: sender,
            recipients: recipients.map { SpoolRecipient(address: $0, notify: notify) },
            envelope: SpoolEnvelope(), receivedHeader: header, content: ByteBuffer(string: body)
        )
    }
}
