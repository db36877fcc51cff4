import TollgateConfiguration
import TollgateSpool
import TollgateMetrics
/// How messages leave: one upstream (an SMTP smarthost, an outbox folder). A transport
/// never throws; every failure comes back as replies, so the outcome folder sees one shape.
public protocol Transport: Sendable {
    /// Tries to deliver `message` to the recipients at `recipients` (indices into
    /// `message.recipients`, all pending) once, sending `message.receivedHeader` before
    /// the content. Returns a reply for each of them.
    func deliver(_ message: SpoolMessage, to recipients: [Int]) async -> DeliveryOutcome

    /// Closes what the transport holds open (idle connections); called once, at stop or
    /// when a reload replaces it. Deliveries still running on it finish, and their
    /// connections are closed when they end.
    func shutdown() async
}

extension Transport {
    public func shutdown() async {}
}
