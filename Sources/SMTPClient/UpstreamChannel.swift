import NIOConcurrencyHelpers
import Logging
import NIOCore
import SMTPCore

/// The async face of a channel with an ``SMTPClientHandler``: write commands, await
/// replies with deadlines. Every failure surfaces as an ``SMTPClientError``.
struct UpstreamChannel: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<SMTPClientHandler>
    let logger: Logger

    /// Writes the commands in one flush (one TCP write for a pipelined group).
    func send(_ commands: [ClientCommand]) {
        var buffer = channel.allocator.buffer(capacity: commands.count * 64)
        for command in commands {
            logger.trace("upstream command", metadata: ["smtp.command": "\(command)"])
            command.write(to: &buffer)
        }
        channel.writeAndFlush(buffer, promise: nil)
    }

    func send(_ command: ClientCommand) { send([command]) }

    func write(_ buffer: ByteBuffer) {
        channel.writeAndFlush(buffer, promise: nil)
    }

    /// Writes `buffer`; the box turns true once the kernel has taken all of it.
    func write(_ buffer: ByteBuffer, written: NIOLockedValueBox<Bool>) {
        channel.writeAndFlush(buffer).whenSuccess { written.withLockedValue { $0 = true } }
    }

    func read(timeout: TimeAmount, waitingFor what: String) async throws(SMTPClientError) -> SMTPReply {
        let handler = self.handler
        let reply = try await Self.mapErrors {
            try await channel.eventLoop.flatSubmit {
                handler.value.nextReply(timeout: timeout, waitingFor: what)
            }.get()
        }
        logger.trace("upstream reply", metadata: ["smtp.reply": "\(reply)"])
        return reply
    }

    func startTLS(_ setup: SMTPClientHandler.TLSSetup, timeout: TimeAmount) async throws(SMTPClientError) -> SMTPClientHandler.StartTLSOutcome {
        let handler = self.handler
        return try await Self.mapErrors {
            try await channel.eventLoop.flatSubmit {
                handler.value.startTLS(setup, timeout: timeout)
            }.get()
        }
    }

    var isTLSActive: Bool {
        get async {
            let handler = self.handler
            return (try? await channel.eventLoop.submit { handler.value.isTLSActive }.get()) ?? false
        }
    }

    /// Whether the connection can start a transaction: open, not failed, and the server
    /// has not said anything unprompted (an idle 421 before closing, for example).
    var isIdleAndHealthy: Bool {
        get async {
            let handler = self.handler
            return (try? await channel.eventLoop.submit { handler.value.isIdleAndHealthy }.get()) ?? false
        }
    }

    /// Ends the connection: pending waits fail with `error`, the channel closes.
    func fail(_ error: SMTPClientError) {
        let handler = self.handler
        channel.eventLoop.execute { handler.value.fail(error) }
    }

    func close() async {
        try? await channel.close()
    }

    private static func mapErrors<T: Sendable>(_ body: () async throws -> T) async throws(SMTPClientError) -> T {
        do {
            return try await body()
        } catch let error as SMTPClientError {
            throw error
        } catch {
            throw .connectionClosed
        }
    }
}
