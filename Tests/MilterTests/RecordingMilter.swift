import MilterStage
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TollgatePolicy

/// A tiny milter for the tests: it records every packet the stage sends, in order, and
/// answers as its script says. Loopback, a free port, closed by the test.
final class RecordingMilter: Sendable {
    enum Response: Sendable {
        case packets([MilterPacket])
        case raw([UInt8])
        case delayed([(seconds: Double, packet: MilterPacket)])
        case silent
    }

    typealias Script = @Sendable (MilterPacket) -> Response

    let group: MultiThreadedEventLoopGroup
    let channel: Channel
    let log: NIOLockedValueBox<[MilterPacket]>
    let connections: NIOLockedValueBox<Int>
    var port: Int { channel.localAddress!.port! }

    /// A milter that asks for `actions` and `steps` and continues at every step, with
    /// `eom` sent before its final `continue` at end of message.
    static func continuing(actions: Milter.Actions = Milter.Actions.offered, steps: Milter.Steps = [], eom: [MilterPacket] = [],
                           override: (@Sendable (MilterPacket) -> Response?)? = nil) -> Script {
        { packet in
            if let r = override?(packet) { return r }
            switch packet.code {
            case Milter.Command.optionNegotiation.rawValue:
                return .packets([MilterPacket(code: Milter.Reply.optionNegotiation.rawValue,
                                              data: be(6) + be(actions.rawValue) + be(steps.rawValue))])
            case Milter.Command.macro.rawValue, Milter.Command.abort.rawValue, Milter.Command.quit.rawValue:
                return .silent
            case Milter.Command.endOfMessage.rawValue:
                return .packets(eom + [MilterPacket(code: Milter.Reply.continue.rawValue)])
            case Milter.Command.header.rawValue where steps.contains(.noReplyHeader):
                return .silent
            case Milter.Command.body.rawValue where steps.contains(.noReplyBody):
                return .silent
            default:
                return .packets([MilterPacket(code: Milter.Reply.continue.rawValue)])
            }
        }
    }

    init(_ script: @escaping Script) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let log = NIOLockedValueBox<[MilterPacket]>([])
        let connections = NIOLockedValueBox(0)
        self.group = group
        self.log = log
        self.connections = connections
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    connections.withLockedValue { $0 += 1 }
                    try child.pipeline.syncOperations.addHandler(ByteToMessageHandler(MilterPacketDecoder()))
                    try child.pipeline.syncOperations.addHandler(Handler(script: script, log: log))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    var packets: [MilterPacket] { log.withLockedValue { $0 } }
    /// The commands received, as characters (`"OCHMRTLLNBE"`), macros left out.
    var commands: String {
        String(packets.filter { $0.code != Milter.Command.macro.rawValue }.map { Character(UnicodeScalar($0.code)) })
    }

    /// The macros sent for `command`, as a dictionary.
    func macros(for command: Milter.Command) -> [String: String] {
        var out: [String: String] = [:]
        for p in packets where p.code == Milter.Command.macro.rawValue && p.data.first == command.rawValue {
            let s = p.data.dropFirst().split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            var i = 0
            while i + 1 < s.count { out[s[i]] = s[i + 1]; i += 2 }
        }
        return out
    }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = MilterPacket
        let script: Script
        let log: NIOLockedValueBox<[MilterPacket]>
        init(script: @escaping Script, log: NIOLockedValueBox<[MilterPacket]>) {
            self.script = script
            self.log = log
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let packet = unwrapInboundIn(data)
            log.withLockedValue { $0.append(packet) }
            switch script(packet) {
            case .silent: break
            case .packets(let ps):
                var buffer = context.channel.allocator.buffer(capacity: 64)
                for p in ps { p.write(to: &buffer) }
                context.writeAndFlush(NIOAny(buffer), promise: nil)
            case .raw(let bytes):
                context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
            case .delayed(let items):
                let channel = context.channel
                var at = 0.0
                for item in items {
                    at += item.seconds
                    let p = item.packet
                    _ = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(at * 1000))) {
                        var buffer = channel.allocator.buffer(capacity: 16)
                        p.write(to: &buffer)
                        channel.writeAndFlush(buffer, promise: nil)
                    }
                }
            }
        }
    }
}

func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

func reply(_ r: Milter.Reply, _ data: [UInt8] = []) -> MilterPacket { MilterPacket(code: r.rawValue, data: data) }

func nul(_ strings: String...) -> [UInt8] { strings.flatMap { Array($0.utf8) + [0] } }

/// Contexts for one session, phase by phase.
struct Session {
    var id = "s1"
    var message: [UInt8] = Array("From: a@example.com\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nhello\r\n".utf8)
    /// What the relay knows of the connection (nothing by default).
    var connection = ConnectionInfo()
    /// The transaction's queue id, given from the mail phase on.
    var queueID: String?

    func context(_ phase: PolicyPhase, sender: String? = nil, recipient: String? = nil, recipients: [String] = [], user: String? = nil, message: [UInt8]? = nil) -> PolicyContext {
        let content = phase == .data ? MessageContent(parsing: message ?? self.message) : nil
        return PolicyContext(
            phase: phase, sessionID: id, listener: "relay", clientAddress: "127.0.0.1",
            helo: phase == .connect ? nil : "client.example", tls: connection.tls != nil, connection: connection, authenticatedUser: user,
            sender: sender, recipients: recipients, recipient: recipient,
            messageSize: content?.size, headers: content?.unfoldedHeaders ?? [], message: content,
            queueID: [.mail, .rcpt, .data].contains(phase) ? queueID : nil
        )
    }

    /// connect, helo, mail, each rcpt and data, returning every decision.
    func run(_ stage: any PolicyStage, sender: String = "a@example.com", recipients: [String] = ["b@example.net"], user: String? = nil, message: [UInt8]? = nil) async throws -> [PolicyDecision] {
        var out: [PolicyDecision] = []
        out.append(try await stage.evaluate(context(.connect)))
        out.append(try await stage.evaluate(context(.helo)))
        out.append(try await stage.evaluate(context(.mail, sender: sender, user: user)))
        var accepted: [String] = []
        for r in recipients {
            out.append(try await stage.evaluate(context(.rcpt, sender: sender, recipient: r, recipients: accepted, user: user)))
            accepted.append(r)
        }
        out.append(try await stage.evaluate(context(.data, sender: sender, recipients: accepted, user: user, message: message)))
        return out
    }
}
