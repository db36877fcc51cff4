import SMTPCore
import TollgateConfiguration
import TollgateSpool
import TollgateMetrics

/// A `directory:` upstream as a transport: one `.eml` file per message, every pending
/// recipient delivered once the file is on disk.
public struct DirectoryTransport: Transport {
    public var writer: OutboxWriter

    public init(directory: String) {
        self.writer = OutboxWriter(directory: directory)
    }

    public func deliver(_ message: SpoolMessage, to recipients: [Int]) async -> DeliveryOutcome {
        do {
            try writer.write(
                id: message.id, sender: message.sender, recipients: recipients.map { message.recipients[$0].address },
                header: message.receivedHeader, content: message.content
            )
            return .all(recipients, SMTPReply(250, "2.0.0", "written to \(writer.directory)"))
        } catch {
            return .all(recipients, SMTPReply(451, "4.3.0", ErrorText.describe(error)))
        }
    }
}
