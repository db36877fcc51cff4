import NIOConcurrencyHelpers
import NIOCore
import SMTPCore
import TollgateConfiguration
import TollgateDelivery
import TollgateSpool

/// A transport whose answers the test scripts. It records every delivery, how many
/// run at once, and any message delivered twice at the same time.
final class FakeTransport: Transport {
    typealias Answer = @Sendable (SpoolMessage, [Int]) async -> DeliveryOutcome

    /// One delivery as the upstream saw it.
    struct Delivery: Sendable {
        var id: String
        var sender: String
        var recipients: [String]
        /// The trace header and the content, as they would go on the wire.
        var data: String
    }

    private struct State {
        var deliveries: [Delivery] = []
        var running: [String] = []
        var maxConcurrent = 0
        var overlapping: [String] = []
        var shutdown = false
    }

    private let answer: Answer
    private let state = NIOLockedValueBox(State())

    static let accept: Answer = { _, recipients in .all(recipients, SMTPReply(250, "2.0.0", "ok"), remoteMTA: "fake:25") }

    init(_ answer: @escaping Answer = FakeTransport.accept) {
        self.answer = answer
    }

    func deliver(_ message: SpoolMessage, to recipients: [Int]) async -> DeliveryOutcome {
        state.withLockedValue { s in
            if s.running.contains(message.id) { s.overlapping.append(message.id) }
            s.running.append(message.id)
            s.maxConcurrent = max(s.maxConcurrent, s.running.count)
        }
        let outcome = await answer(message, recipients)
        state.withLockedValue { s in
            s.running.remove(at: s.running.firstIndex(of: message.id)!)
            s.deliveries.append(Delivery(
                id: message.id, sender: message.sender, recipients: recipients.map { message.recipients[$0].address },
                data: message.receivedHeader + String(buffer: message.content)
            ))
        }
        return outcome
    }

    func shutdown() async {
        state.withLockedValue { $0.shutdown = true }
    }

    var deliveries: [Delivery] { state.withLockedValue { $0.deliveries } }
    var running: Int { state.withLockedValue { $0.running.count } }
    var maxConcurrent: Int { state.withLockedValue { $0.maxConcurrent } }
    var overlapping: [String] { state.withLockedValue { $0.overlapping } }
    var wasShutDown: Bool { state.withLockedValue { $0.shutdown } }
}
