import Logging
import NIOCore
import NIOPosix
import SMTPCore
import Testing

@testable import SMTPClient

enum Client {
    static let logger = Logger(label: "smtpclient-tests") { _ in SwiftLogNoOpLogHandler() }

    static func configuration(
        tls: UpstreamTLSMode = .none,
        verify: Bool = true,
        ca: Bool = true,
        username: String? = nil,
        password: String? = nil
    ) throws -> SMTPClientConfiguration {
        SMTPClientConfiguration(
            tls: tls,
            verifyCertificate: verify,
            caFile: ca && tls != .none ? try TestPKI.shared.get().caCertificate : nil,
            username: username,
            password: password,
            heloName: "relay.tollgate.test",
            connectTimeout: .seconds(5),
            commandTimeout: .seconds(5),
            dataTimeout: .seconds(5)
        )
    }

    static func connect(port: Int, host: String = "127.0.0.1", _ configuration: SMTPClientConfiguration) async throws -> SMTPClientConnection {
        try await SMTPClientConnection.connect(
            host: host, port: port, configuration: configuration,
            group: MultiThreadedEventLoopGroup.singleton, logger: logger
        )
    }

    static func envelope(_ recipients: [String], sender: String = "sender@example.test") -> OutboundEnvelope {
        OutboundEnvelope(sender: sender, recipients: recipients)
    }

    static let message = ByteBuffer(string: "From: sender@example.test\r\nTo: rcpt@example.test\r\nSubject: test\r\n\r\nHello.\r\n")
}

/// `#expect(throws:)` for async code that must fail with a particular ``SMTPClientError``.
func expectClientError(
    _ expected: (SMTPClientError) -> Bool,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async {
    do {
        try await body()
        Issue.record("expected an SMTPClientError, got success", sourceLocation: sourceLocation)
    } catch let error as SMTPClientError {
        #expect(expected(error), "unexpected \(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected an SMTPClientError, got \(error)", sourceLocation: sourceLocation)
    }
}
