import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SMTPCore

extension SMTPClientConnection {
    /// Opens a session: TCP connect (and TLS for `implicit`), the 220 greeting, EHLO
    /// (HELO if EHLO gets a 5xx), STARTTLS per ``SMTPClientConfiguration/tls`` and EHLO
    /// again (RFC 3207 §4.2), then AUTH when credentials are configured.
    ///
    /// - Parameter host: a name or an IP literal without brackets. A name is checked
    ///   against the certificate and sent as SNI; an IP literal is checked against the
    ///   certificate's IP addresses.
    /// - Throws: ``SMTPClientError``; its ``SMTPClientError/reply`` says what to record.
    public static func connect(
        host: String,
        port: Int,
        configuration: SMTPClientConfiguration,
        group: any EventLoopGroup,
        logger: Logger
    ) async throws -> SMTPClientConnection {
        var logger = logger
        logger[metadataKey: "upstream.host"] = "\(host)"
        logger[metadataKey: "upstream.port"] = "\(port)"

        // Everything that can be refused locally is refused before connecting.
        let ehlo = try ClientCommand.ehlo(configuration.heloName)
        if let username = configuration.username {
            try SASLClient.validate(username: username, password: configuration.password ?? "")
        }
        let sslContext = configuration.tls == .none ? nil : try makeSSLContext(configuration)
        let serverHostname = isIPLiteral(host) ? nil : host
        let tlsSetup = sslContext.map {
            SMTPClientHandler.TLSSetup(context: $0, serverHostname: serverHostname, peer: host, verifies: configuration.verifyCertificate)
        }
        let implicitTLS = configuration.tls == .implicit ? tlsSetup : nil

        // The handler outlives its place in the pipeline (a failed handshake removes it
        // before we look), so keep hold of it from the start.
        let handlerBox = NIOLockedValueBox<NIOLoopBound<SMTPClientHandler>?>(nil)
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    let handler = SMTPClientHandler(implicitTLS: implicitTLS, eventLoop: channel.eventLoop)
                    if let implicitTLS {
                        try sync.addHandler(implicitTLS.makeHandler(handler.certificateCheck))
                    }
                    try sync.addHandler(handler)
                    handlerBox.withLockedValue { $0 = NIOLoopBound(handler, eventLoop: channel.eventLoop) }
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            let reason = UpstreamFailureText.connect(error, host: host, port: port)
            logger.info("upstream connect failed", metadata: ["error.message": "\(reason)"])
            throw SMTPClientError.connectFailed(reason)
        }
        guard let handler = handlerBox.withLockedValue({ $0 }) else {
            channel.close(promise: nil)
            throw SMTPClientError.connectFailed("channel set-up failed")
        }

        let upstream = UpstreamChannel(channel: channel, handler: handler, logger: logger)
        do {
            var session = SessionSetup(upstream: upstream, configuration: configuration, ehlo: ehlo, logger: logger)
            let capabilities = try await session.run(
                tls: tlsSetup
            )
            let tlsActive = await upstream.isTLSActive
            logger.debug(
                "upstream session ready",
                metadata: ["upstream.tls": "\(tlsActive)", "upstream.capabilities": "\(capabilities.keywords.sorted())"]
            )
            return SMTPClientConnection(
                upstream: upstream, capabilities: capabilities, isTLSActive: tlsActive,
                configuration: configuration, logger: logger
            )
        } catch {
            logger.info("upstream session setup failed", metadata: ["error.message": "\(error)"])
            upstream.fail(error)
            await upstream.close()
            throw error
        }
    }

    static func makeSSLContext(_ configuration: SMTPClientConfiguration) throws(SMTPClientError) -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.apply(configuration.tlsPolicy)
        tls.certificateVerification = configuration.verifyCertificate ? .fullVerification : .none
        do {
            if let caFile = configuration.caFile {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            }
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw .tlsHandshake(configuration.caFile.map { "cannot load the CA file \($0)" } ?? "cannot set up TLS")
        }
    }

    static func isIPLiteral(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}

/// The steps between the greeting and the first transaction.
struct SessionSetup {
    let upstream: UpstreamChannel
    let configuration: SMTPClientConfiguration
    let ehlo: ClientCommand
    let logger: Logger

    mutating func run(tls: SMTPClientHandler.TLSSetup?) async throws(SMTPClientError) -> ServerCapabilities {
        let timeout = configuration.commandTimeout
        let greeting = try await upstream.read(timeout: timeout, waitingFor: "greeting")
        guard greeting.code == 220 else { throw .greeting(greeting) }

        var capabilities = try await hello(allowHELO: true)
        var tlsActive = configuration.tls == .implicit

        switch configuration.tls {
        case .none, .implicit:
            break
        case .required, .opportunistic:
            guard capabilities.startTLS, let tls else {
                if configuration.tls == .required { throw .tlsRequiredButUnavailable }
                logger.info("upstream does not offer STARTTLS; continuing in plaintext")
                break
            }
            switch try await upstream.startTLS(tls, timeout: timeout + configuration.connectTimeout) {
            case .established:
                tlsActive = true
                // RFC 3207 §4.2: forget everything learnt before TLS.
                capabilities = try await hello(allowHELO: false)
            case .refused(let reply):
                if reply.code == 421 { throw .greeting(reply) }
                if configuration.tls == .required { throw .tlsRequiredButUnavailable }
                logger.info("upstream refused STARTTLS; continuing in plaintext", metadata: ["smtp.reply": "\(reply)"])
            }
        }

        if let username = configuration.username {
            // Credentials never cross the wire in plaintext.
            guard tlsActive else { throw .tlsRequiredButUnavailable }
            try await authenticate(username: username, password: configuration.password ?? "", capabilities: capabilities)
        }
        return capabilities
    }

    /// EHLO; HELO when EHLO gets a 5xx other than 421-like closing (RFC 5321 §3.2).
    private func hello(allowHELO: Bool) async throws(SMTPClientError) -> ServerCapabilities {
        let timeout = configuration.commandTimeout
        upstream.send(ehlo)
        let reply = try await upstream.read(timeout: timeout, waitingFor: "EHLO")
        if reply.code == 250 { return ServerCapabilities(ehloReply: reply) }
        guard allowHELO, reply.isPermanent else { throw .greeting(reply) }
        upstream.send(try .helo(configuration.heloName))
        let heloReply = try await upstream.read(timeout: timeout, waitingFor: "HELO")
        guard heloReply.code == 250 else { throw .greeting(heloReply) }
        return .none
    }

    private func authenticate(username: String, password: String, capabilities: ServerCapabilities) async throws(SMTPClientError) {
        guard var sasl = SASLClient(offered: capabilities.authMechanisms, username: username, password: password) else {
            throw .authFailed(SMTPReply(504, "5.7.4", "upstream offers neither AUTH PLAIN nor AUTH LOGIN"))
        }
        upstream.send(try sasl.start())
        while true {
            let reply = try await upstream.read(timeout: configuration.commandTimeout, waitingFor: "AUTH")
            switch try sasl.received(reply) {
            case .send(let command):
                upstream.send(command)
            case .succeeded:
                logger.debug("upstream authentication succeeded", metadata: ["smtp.auth.mechanism": "\(sasl.mechanism.rawValue)"])
                return
            case .failed(let reply):
                throw .authFailed(reply)
            }
        }
    }
}
