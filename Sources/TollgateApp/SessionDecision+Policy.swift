import SMTPCore
import SMTPServer
import TollgatePolicy
import TollgateConfiguration
import TollgatePipeline
import TollgateSpool
import TollgateDelivery
import TollgateMetrics

extension SMTPReply {
    /// A stage's reply with its code class checked: a stage cannot accept by answering
    /// 2xx to a refusal, nor turn a deferral into a rejection.
    init(policy: PolicyReply, defaultCode: Int) {
        let valid = (400..<600).contains(policy.code) && policy.code / 100 == defaultCode / 100
        let code = valid ? policy.code : defaultCode
        self.init(code, policy.enhancedCode ?? SMTPReply.defaultEnhancedCode(for: code), policy.text)
    }
}

extension SessionDecision.Verdict {
    /// The session's answer to a pipeline verdict: continue and accept proceed.
    init(_ verdict: PolicyVerdict) {
        switch verdict {
        case .continue, .accept: self = .proceed
        case .reject(let r): self = .refuse(SMTPReply(policy: r, defaultCode: 550))
        case .defer(let r): self = .refuse(SMTPReply(policy: r, defaultCode: 450))
        case .disconnect(let r): self = .disconnect(SMTPReply(policy: r, defaultCode: 421))
        }
    }
}

extension PolicyPhase {
    init(_ phase: SessionPhase) {
        switch phase {
        case .connect: self = .connect
        case .helo: self = .helo
        case .starttls: self = .starttls
        case .auth: self = .auth
        case .mail: self = .mail
        case .rcpt: self = .rcpt
        case .data: self = .data
        }
    }
}

extension PolicyContext {
    /// What stages see for a session's request.
    init(_ request: PolicyRequest<RelayAnnotations>) {
        self.init(
            phase: PolicyPhase(request.phase),
            session: request.session,
            envelope: request.envelope,
            recipient: request.recipient,
            message: request.message,
            facts: request.annotations.facts,
            queueID: request.annotations.queueID
        )
    }

    /// The data-phase context of a stored message, told to stages once it is queued.
    init(_ request: StoreRequest<RelayAnnotations>) {
        self.init(phase: .data, session: request.session, envelope: request.envelope, recipient: nil, message: request.message, facts: request.annotations.facts, queueID: request.annotations.queueID)
    }

    private init(phase: PolicyPhase, session: SessionSnapshot, envelope: Envelope?, recipient: Envelope.Recipient?, message: ReceivedMessage?, facts: SessionFacts, queueID: String?) {
        self.init(
            phase: phase,
            sessionID: session.sessionID,
            listener: session.listener,
            clientAddress: session.clientAddress,
            helo: session.helo,
            tls: session.tls,
            connection: ConnectionInfo(session),
            authenticatedUser: session.authenticatedUser,
            sender: envelope?.sender.address,
            recipients: envelope?.recipients.map { $0.mailbox.normalized } ?? [],
            recipient: recipient?.mailbox.normalized,
            messageSize: message?.size,
            headers: message?.headers ?? [],
            message: phase == .data ? message.map { MessageContent(buffer: $0.content) } : nil,
            queueID: queueID,
            facts: facts
        )
    }
}

extension ConnectionInfo {
    init(_ session: SessionSnapshot) {
        self.init(
            clientPort: session.connection.clientPort,
            clientName: session.connection.clientName,
            reverseClientName: session.connection.clientPTR,
            serverAddress: session.connection.serverAddress,
            serverPort: session.connection.serverPort,
            saslMethod: session.saslMethod,
            tls: session.tlsSession.map(TLSInfo.init)
        )
    }
}

extension TLSInfo {
    init(_ facts: TLSSessionFacts) {
        self.init(
            protocolVersion: facts.protocolVersion,
            cipher: facts.cipher,
            cipherBits: facts.cipherBits,
            clientCertificate: facts.peerCertificate.map {
                ClientCertificate(subject: $0.subject, issuer: $0.issuer, fingerprint: $0.fingerprint, publicKeyFingerprint: $0.publicKeyFingerprint)
            }
        )
    }
}
