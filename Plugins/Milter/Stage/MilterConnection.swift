import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TollgatePolicy

/// Where the milter listens: `inet:host:port` (also `inet6:`) or `unix:/path`.
public enum MilterAddress: Sendable, Hashable, CustomStringConvertible {
    case inet(host: String, port: Int)
    case unix(path: String)

    /// Parses Postfix's and Sendmail's forms: `inet:host:port`, `inet:port@host`,
    /// `inet6:[::1]:port`, `unix:/path` (also `local:/path`).
    public static func parse(_ text: String) -> MilterAddress? {
        let t = text.trimmingSpaces
        if t.hasPrefix("unix:") || t.hasPrefix("local:") {
            let path = String(t.drop { $0 != ":" }.dropFirst())
            return path.hasPrefix("/") ? .unix(path: path) : nil
        }
        guard t.hasPrefix("inet:") || t.hasPrefix("inet6:") else { return nil }
        var rest = String(t.drop { $0 != ":" }.dropFirst())
        var host: String
        var portText: String
        if let at = rest.firstIndex(of: "@") {            // inet:port@host (Sendmail)
            portText = String(rest[..<at])
            host = String(rest[rest.index(after: at)...])
        } else {
            guard let colon = rest.lastIndex(of: ":") else { return nil }
            portText = String(rest[rest.index(after: colon)...])
            rest = String(rest[..<colon])
            host = rest
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(portText), (1...65535).contains(port) else { return nil }
        return .inet(host: host, port: port)
    }

    public var description: String {
        switch self {
        case .inet(let host, let port): return "inet:\(host):\(port)"
        case .unix(let path): return "unix:\(path)"
        }
    }
}

/// One open connection to the milter. Replies are awaited with a deadline per command;
/// a `progress` reply starts the deadline again. Everything happens on the channel's
/// event loop: no thread ever blocks.
final class MilterConnection: Sendable {
    let channel: Channel
    private let handler: MilterReplyHandler

    private init(channel: Channel, handler: MilterReplyHandler) {
        self.channel = channel
        self.handler = handler
    }

    static func open(_ address: MilterAddress, group: EventLoopGroup, connectTimeout: Double) async throws -> MilterConnection {
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.milliseconds(Int64(connectTimeout * 1000)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(MilterPacketDecoder()))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(MilterPacketEncoder()))
                    try channel.pipeline.syncOperations.addHandler(MilterReplyHandler())
                }
            }
        let channel: Channel
        do {
            switch address {
            case .inet(let host, let port): channel = try await bootstrap.connect(host: host, port: port).get()
            case .unix(let path): channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
        } catch let error as ChannelError {
            if case .connectTimeout = error {
                throw MilterError.connect("\(address): no connection within \(PolicyUnits.formatDuration(connectTimeout))")
            }
            throw MilterError.connect("\(address): \(error)")
        } catch {
            let text = "\(error)"
            for (needle, said) in [("Connection refused", "connection refused"), ("No such file", "no such socket"), ("Permission denied", "permission denied")]
            where text.contains(needle) {
                throw MilterError.connect("\(address): \(said)")
            }
            throw MilterError.connect("\(address): \(text)")
        }
        let handler = try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: MilterReplyHandler.self)
        }.get()
        return MilterConnection(channel: channel, handler: handler)
    }

    /// Writes packets without waiting for an answer.
    func send(_ packets: [MilterPacket]) async throws {
        guard !packets.isEmpty else { return }
        for p in packets.dropLast() { channel.write(p, promise: nil) }
        do {
            try await channel.writeAndFlush(packets.last!).get()
        } catch {
            throw MilterError.closed("writing \(packets.last!.character): \(error)")
        }
    }

    /// The next packet from the milter, within `timeout` seconds (progress restarts it).
    func receive(timeout: Double, waitingFor what: String) async throws -> MilterPacket {
        let handler = self.handler
        let loop = channel.eventLoop
        let future = loop.flatSubmit { handler.next(timeout: timeout, what: what, loop: loop) }
        return try await future.get()
    }

    func close() {
        channel.close(promise: nil)
    }
}

/// Queues the milter's packets and hands them to one waiter at a time.
final class MilterReplyHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = MilterPacket

    // Touched on the event loop only.
    private var queued: [MilterPacket] = []
    private var waiter: EventLoopPromise<MilterPacket>?
    private var deadline: Scheduled<Void>?
    private var failure: MilterError?
    private var timeout: Double = 0
    private var what = ""

    func next(timeout: Double, what: String, loop: EventLoop) -> EventLoopFuture<MilterPacket> {
        if !queued.isEmpty { return loop.makeSucceededFuture(queued.removeFirst()) }
        if let failure { return loop.makeFailedFuture(failure) }
        let promise = loop.makePromise(of: MilterPacket.self)
        waiter = promise
        self.timeout = timeout
        self.what = what
        arm(loop)
        return promise.futureResult
    }

    private func arm(_ loop: EventLoop) {
        deadline?.cancel()
        let timeout = self.timeout
        let what = self.what
        deadline = loop.scheduleTask(in: .milliseconds(Int64(timeout * 1000))) { [self] in
            self.fail(.timeout("no reply to \(what) within \(PolicyUnits.formatDuration(timeout))"))
        }
    }

    private func fail(_ error: MilterError) {
        if failure == nil { failure = error }
        deadline?.cancel()
        deadline = nil
        if let w = waiter {
            waiter = nil
            w.fail(error)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let packet = unwrapInboundIn(data)
        if packet.code == Milter.Reply.progress.rawValue {
            if waiter != nil { arm(context.eventLoop) }   // keep waiting, from now
            return
        }
        if let w = waiter {
            waiter = nil
            deadline?.cancel()
            deadline = nil
            w.succeed(packet)
        } else {
            queued.append(packet)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(.closed("connection closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let e = error as? MilterError { fail(e) } else { fail(.closed("\(error)")) }
        context.close(promise: nil)
    }
}

