import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOSSL
import NIOTLS
import SMTPCore
import TestSupport
import Testing

@testable import SMTPServer

/// STARTTLS through the handler with a real TLS handshake between two in-memory
/// channels: what was pipelined after STARTTLS is never taken as a command
/// (CVE-2011-0411, RFC 3207 §4.2), and the session starts afresh inside TLS.
@Suite struct StartTLSHandlerTests {
    /// Tells when the client's handshake is done.
    final class HandshakeWatcher: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        let done = NIOLockedValueBoxFlag()

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls { done.set() }
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Moves bytes both ways until nothing more moves.
    func shuttle(_ server: NIOAsyncTestingChannel, _ client: NIOAsyncTestingChannel) async throws {
        var moved = true
        while moved {
            moved = false
            while let bytes = try await server.readOutbound(as: ByteBuffer.self) {
                try await client.writeInbound(bytes)
                moved = true
            }
            while let bytes = try await client.readOutbound(as: ByteBuffer.self) {
                try await server.writeInbound(bytes)
                moved = true
            }
            for _ in 0..<10 { await Task.yield() }
        }
    }

    @Test func pipelinedCommandsAfterSTARTTLSAreDiscarded() async throws {
        let dir = try TemporaryDirectory(label: "starttls")
        defer { dir.remove() }
        let certificates = try TestCertificates.make(in: dir.path, hostnames: ["relay.test"])
        let serverContext = try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificates.certificatePath).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: certificates.keyPath, format: .pem))
        ))
        var clientConfiguration = TLSConfiguration.makeClientConfiguration()
        clientConfiguration.trustRoots = .file(certificates.caCertificatePath)
        let clientContext = try NIOSSLContext(configuration: clientConfiguration)

        let delegate = FakeDelegate(phases: [.starttls])
        let h = try await HandlerHarness(
            delegate: delegate,
            configuration: SMTPSessionConfiguration(hostname: "relay.test", tls: .starttls, auth: .optional),
            sslContext: serverContext
        )
        _ = try await h.reply()
        try await h.send("EHLO c\r\n")
        #expect(try await h.reply().contains("STARTTLS"))
        try await h.send("STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\nRCPT TO:<victim@example.net>\r\n")
        #expect(try await h.reply() == "220 2.0.0 Ready to start TLS\r\n")
        try await h.settle()

        let client = NIOAsyncTestingChannel()
        let watcher = HandshakeWatcher()
        try await client.testingEventLoop.executeInContext {
            try client.pipeline.syncOperations.addHandlers([
                try NIOSSLClientHandler(context: clientContext, serverHostname: "relay.test"), watcher,
            ])
        }
        try await client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 25))
        for _ in 0..<20 where !watcher.done.value {
            try await shuttle(h.channel, client)
            try await h.settle()
        }
        #expect(watcher.done.value)
        #expect(delegate.asked == [.starttls])

        // Nothing answered the injected commands; the session starts afresh in TLS.
        try await client.writeOutbound(ByteBuffer(string: "MAIL FROM:<a@b.example>\r\n"))
        try await shuttle(h.channel, client)
        try await h.settle()
        try await shuttle(h.channel, client)
        let first = try #require(try await client.readInbound(as: ByteBuffer.self))
        #expect(String(buffer: first).hasPrefix("503 5.5.1 Error: send HELO/EHLO first"))
        try await client.writeOutbound(ByteBuffer(string: "EHLO c\r\n"))
        try await shuttle(h.channel, client)
        try await h.settle()
        try await shuttle(h.channel, client)
        let ehlo = String(buffer: try #require(try await client.readInbound(as: ByteBuffer.self)))
        #expect(ehlo.contains("AUTH PLAIN LOGIN"))
        #expect(!ehlo.contains("STARTTLS"))
    }
}

/// A flag shared between the event loop and the test.
final class NIOLockedValueBoxFlag: Sendable {
    private let box = NIOLockedValueBox(false)
    var value: Bool { box.withLockedValue { $0 } }
    func set() { box.withLockedValue { $0 = true } }
}
