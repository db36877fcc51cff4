import TollgateSpool

extension QueueRunner {
    /// A delivery slot taken for a message that is about to be stored.
    public struct Reservation: Sendable {
        /// The claim to store the message with.
        public let claim: SpoolClaim
    }

    /// Takes a delivery slot for a message about to be stored, if one is free, so that
    /// the message is stored already claimed and delivered from memory at once — no
    /// claim, no load. `nil` when the runner is busy or stopping: then the message is
    /// stored unclaimed and found by the next look at the queue.
    public func reserve() -> Reservation? {
        guard !signal.isStopped, takeSlot() else { return nil }
        return Reservation(claim: SpoolClaim(owner: settings.owner, expires: now() + settings.lease))
    }

    /// The message was stored with the reservation's claim: deliver it now.
    public func deliverStored(_ message: SpoolMessage, _ reservation: Reservation) {
        Task {
            var logger = self.logger
            logger[metadataKey: "queue.id"] = .string(message.id)
            await self.deliverClaimed(message, logger: logger)
            self.giveBackSlot()
        }
    }

    /// The message could not be stored: the slot is free again.
    public func cancel(_ reservation: Reservation) {
        giveBackSlot()
    }
}
