import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOSSL
import SMTPCore
import TestSupport
import Testing

@testable import SMTPServer

/// A delegate whose answers the test chooses, recording what it was asked.
final class FakeDelegate: SMTPSessionDelegate {
    typealias Annotations = Notes

    struct Log {
        var phases: [SessionPhase] = []
        var stored: [StoreRequest<Notes>] = []
        var logins = 0
    }

    let phases: Set<SessionPhase>
    let gates: [SessionPhase: Gate]
    let verdicts: [SessionPhase: SessionDecision<Notes>.Verdict]
    let log = NIOLockedValueBox(Log())

    init(phases: Set<SessionPhase> = Set(SessionPhase.allCases), gates: [SessionPhase: Gate] = [:], verdicts: [SessionPhase: SessionDecision<Notes>.Verdict] = [:]) {
        self.phases = phases
        self.gates = gates
        self.verdicts = verdicts
    }

    var asked: [SessionPhase] { log.withLockedValue { $0.phases } }
    var stored: [StoreRequest<Notes>] { log.withLockedValue { $0.stored } }

    func needsDecision(_ phase: SessionPhase) -> Bool { phases.contains(phase) }

    func decide(_ request: PolicyRequest<Notes>) async -> SessionDecision<Notes> {
        log.withLockedValue { $0.phases.append(request.phase) }
        await gates[request.phase]?.wait()
        return SessionDecision(verdicts[request.phase] ?? .proceed)
    }

    /// How often ``authenticate(_:_:)`` was asked.
    var logins: Int { log.withLockedValue { $0.logins } }

    func authenticate(_ credentials: SASLCredentials, _ request: PolicyRequest<Notes>) async -> AuthResult<Notes> {
        log.withLockedValue { $0.logins += 1 }
        return credentials.password == "secret" ? AuthResult(.success(user: credentials.username)) : AuthResult(.failure)
    }

    func store(_ request: StoreRequest<Notes>) async throws -> String {
        let n = log.withLockedValue { log -> Int in
            log.stored.append(request)
            return log.stored.count
        }
        return "Q\(n)"
    }
}

/// Counts the reads the handler lets through to the socket (back-pressure).
final class ReadCounter: ChannelOutboundHandler, Sendable {
    typealias OutboundIn = Never
    let reads = NIOLockedValueBox(0)

    func read(context: ChannelHandlerContext) {
        reads.withLockedValue { $0 += 1 }
        context.read()
    }
}

/// An ``SMTPServerHandler`` on an in-memory channel: bytes in, replies out, time
/// advanced by hand.
struct HandlerHarness {
    let channel: NIOAsyncTestingChannel
    let delegate: FakeDelegate
    let reads = ReadCounter()

    static let timeouts = SMTPTimeouts(command: .seconds(300), data: .seconds(600), stressedCommand: .seconds(10))

    init(
        delegate: FakeDelegate = FakeDelegate(phases: []),
        configuration: SMTPSessionConfiguration = SMTPSessionConfiguration(hostname: "relay.test", maxMessageSize: 100_000),
        sslContext: NIOSSLContext? = nil,
        implicitTLS: Bool = false,
        authFailures: AuthFailureTracker? = nil,
        contentBudget: ContentBudget? = nil,
        stressed: @escaping @Sendable () -> Bool = { false }
    ) async throws {
        self.delegate = delegate
        channel = NIOAsyncTestingChannel()
        let reads = self.reads
        let channel = self.channel
        try await channel.testingEventLoop.executeInContext {
            let handler = SMTPServerHandler(
                configuration: configuration, delegate: delegate, sslContext: sslContext, implicitTLS: implicitTLS,
                timeouts: Self.timeouts, sessionID: "T1", clientAddress: "192.0.2.9", authFailures: authFailures, contentBudget: contentBudget, stressed: stressed, logger: Logger(label: "test")
            )
            try channel.pipeline.syncOperations.addHandlers([reads, handler])
        }
        try await channel.connect(to: SocketAddress(ipAddress: "192.0.2.9", port: 40000))
    }

    /// Sends bytes as one read.
    func send(_ text: String) async throws {
        try await channel.writeInbound(ByteBuffer(string: text))
    }

    /// The next reply written, as text (waits for it).
    func reply() async throws -> String {
        let buffer = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
        return String(buffer: buffer)
    }

    /// Replies written so far, without waiting.
    func written() async throws -> [String] {
        var out: [String] = []
        while let buffer = try await channel.readOutbound(as: ByteBuffer.self) { out.append(String(buffer: buffer)) }
        return out
    }

    /// Greeting, EHLO, MAIL, RCPT and DATA, their replies read: content may follow.
    func openData() async throws {
        _ = try await reply()
        try await send("EHLO c\r\n")
        try await send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n")
        for _ in 0..<3 { _ = try await reply() }
        try await send("DATA\r\n")
        #expect(try await reply().hasPrefix("354 "))
    }

    /// Lets the event loop and the delegate's tasks run.
    func settle() async throws {
        for _ in 0..<20 {
            await Task.yield()
            await channel.testingEventLoop.run()
        }
    }

    func advance(_ amount: TimeAmount) async {
        await channel.testingEventLoop.advanceTime(by: amount)
    }
}
