import Foundation
import Logging
import NIOCore
import NIOPosix
import SMTPCore
import Synchronization
import Testing
import TestSupport

@testable import SMTPClient

/// Where ``Certificates/shared`` lives; removed when the test process exits.
private let certificateFolder = Mutex<TemporaryDirectory?>(nil)

/// Certificates shared by the TLS tests, made once per run: a CA with a server
/// certificate for `localhost` and 127.0.0.1, a self-signed one, an expired one, and
/// one for another name.
struct Certificates: Sendable {
    let trusted: TestCertificates
    let selfSigned: TestCertificates
    let expired: TestCertificates
    /// From its own CA, for `mx.example.test` only.
    let otherName: TestCertificates

    static let shared: Result<Certificates, TestSupportError> = {
        do {
            let folder = try TemporaryDirectory(label: "smtpclient-certs")
            certificateFolder.withLock { $0 = folder }
            atexit { certificateFolder.withLock { $0?.remove() } }
            return .success(
                Certificates(
                    trusted: try TestCertificates.make(in: folder.path),
                    selfSigned: try TestCertificates.makeSelfSigned(in: folder.path),
                    expired: try TestCertificates.makeExpired(in: folder.path),
                    otherName: try TestCertificates.make(in: folder.path, name: "othername", hostnames: ["mx.example.test"], ips: [])
                )
            )
        } catch let error as TestSupportError {
            return .failure(error)
        } catch {
            return .failure(TestSupportError(.processFailed, "certificates: \(error)"))
        }
    }()

    static func get() throws -> Certificates { try shared.get() }
}

enum Client {
    static let logger = Logger(label: "smtpclient-tests") { _ in SwiftLogNoOpLogHandler() }

    /// Short deadlines so that every test is bounded.
    static func configuration(
        tls: UpstreamTLSMode = .none,
        verify: Bool = true,
        caFile: String? = nil,
        username: String? = nil,
        password: String? = nil
    ) -> SMTPClientConfiguration {
        SMTPClientConfiguration(
            tls: tls, verifyCertificate: verify, caFile: caFile, username: username, password: password,
            heloName: "relay.tollgate.test",
            connectTimeout: .seconds(5), commandTimeout: .seconds(5), dataTimeout: .seconds(5)
        )
    }

    /// TLS in `mode`, trusting the test CA.
    static func tlsConfiguration(_ mode: UpstreamTLSMode, username: String? = nil, password: String? = nil) throws -> SMTPClientConfiguration {
        configuration(tls: mode, caFile: try Certificates.get().trusted.caCertificatePath, username: username, password: password)
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

/// Runs `body`, which must fail with an ``SMTPClientError`` that satisfies `expected`.
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

/// Expects a TLS handshake failure whose stored reply is `451 4.7.5` and one sentence
/// ending in `sentence`: no library type names, error stack or build path (issue 7).
func expectTLSFailure(
    _ sentence: String,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async {
    await expectClientError({ error in
        guard case .tlsHandshake(let reason) = error, let reply = error.reply else { return false }
        #expect(reply.code == 451 && reply.enhancedCode == "4.7.5", sourceLocation: sourceLocation)
        #expect(reason == sentence, sourceLocation: sourceLocation)
        #expect(isAdministratorText(reply.text), "\(reply.text)", sourceLocation: sourceLocation)
        return !error.isPermanent
    }, sourceLocation: sourceLocation, body)
}

/// No build path, no Swift type names, no BoringSSL error stack.
func isAdministratorText(_ text: String) -> Bool {
    !["/", "NIOSSL", "BoringSSL", "Error:", "([", ".build", "checkouts", ".cc"].contains { text.contains($0) }
}

/// Starts a sink in a fresh folder; the folder goes when the test ends.
func withRawSink(_ options: RawSMTPSink.Options = .init(), _ body: (RawSMTPSink) async throws -> Void) async throws {
    let folder = try TemporaryDirectory(label: "smtpclient-raw")
    defer { folder.remove() }
    let sink = try RawSMTPSink.start(directory: folder.path, options: options)
    defer { sink.stop() }
    try await body(sink)
}

func withSMTPSink(_ options: [String] = [], _ body: (SMTPSink) async throws -> Void) async throws {
    let folder = try TemporaryDirectory(label: "smtpclient-sink")
    defer { folder.remove() }
    let sink = try SMTPSink.start(dumpDirectory: folder.file("dump"), extraOptions: options)
    defer { sink.stop() }
    try await body(sink)
}

/// ``scriptedUpstreamSource`` run with `settings` (its switches; `dir`, and with
/// `tls` the certificate, are added).
final class ScriptedUpstream: Sendable {
    let port: Int
    let folder: TemporaryDirectory
    private let process: ChildProcess

    static func start(_ settings: [String: any Sendable], tls: Bool = false) async throws -> ScriptedUpstream {
        let folder = try TemporaryDirectory(label: "smtpclient-scripted")
        var settings = settings
        settings["dir"] = folder.path
        if tls {
            let certificates = try Certificates.get().trusted
            settings["cert"] = certificates.certificatePath
            settings["key"] = certificates.keyPath
        }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: settings), as: UTF8.self)
        let script = folder.file("scripted_upstream.py")
        try TestFiles.write(scriptedUpstreamSource, to: script)
        guard let python = RawSMTPSink.python else { throw TestSupportError(.notFound, "python3") }
        let process = try ChildProcess.spawn(python, ["-I", script, json], stderrPath: folder.file("stderr"))
        var port: Int?
        await waitUntil(timeout: 10, interval: 0.02) {
            port = TestFiles.readString(folder.file("port")).flatMap { Int($0) }
            return port != nil || !process.isRunning
        }
        guard let port else {
            _ = process.kill()
            throw TestSupportError(.processFailed, "scripted upstream did not start: \(TestFiles.readString(folder.file("stderr")) ?? "")")
        }
        return ScriptedUpstream(port: port, folder: folder, process: process)
    }

    private init(port: Int, folder: TemporaryDirectory, process: ChildProcess) {
        self.port = port
        self.folder = folder
        self.process = process
    }

    /// The DATA bytes of message `n` (1-based) exactly as received; waits briefly.
    func message(_ n: Int) async -> [UInt8]? {
        var bytes: [UInt8]?
        await waitUntil(timeout: 2, interval: 0.02) {
            bytes = TestFiles.read(folder.file("message-\(n).raw"))
            return bytes != nil
        }
        return bytes
    }

    /// Every byte connection `n` (1-based) has received so far (TLS decrypted).
    func session(_ n: Int) -> String {
        TestFiles.readString(folder.file("session-\(n).raw")) ?? ""
    }

    var authLog: String { TestFiles.readString(folder.file("auth.log")) ?? "" }

    func stop() { _ = process.kill() }

    deinit {
        _ = process.kill()
        folder.remove()
    }
}
