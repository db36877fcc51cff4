import SMTPCore

/// AUTH (RFC 4954): the PLAIN and LOGIN exchanges and the verifier's answer.
extension SMTPSessionStateMachine {
    /// The verifier's answer to ``Action/verifyCredentials(_:_:)``.
    public mutating func authenticationFinished(_ result: AuthResult<Annotations>) -> Action {
        guard case .verifyingCredentials(_, let mechanism) = state else { return .none }
        state = .idle
        switch result.outcome {
        case .success(let user):
            var verified = Scope<Annotations>()
            verified.absorb(result.annotations, result.limits)
            return decide(.auth(user: user, mechanism: mechanism, verified: verified))
        case .failure:
            session.scope.absorb(result.annotations.keptOnRefusal(), nil)
            return authenticationFailed()
        case .temporaryFailure:
            session.scope.absorb(result.annotations.keptOnRefusal(), nil)
            return .reply(SMTPReply(454, "4.7.0", "Temporary authentication failure"))
        }
    }

    /// Instead of ``authenticationFinished(_:)`` when the client has failed too often
    /// across sessions (``AuthFailureTracker``): the verifier is not asked.
    public mutating func authenticationThrottled() -> Action {
        guard case .verifyingCredentials = state else { return .none }
        state = .closed
        return .replyAndClose(SMTPReply(421, "4.7.0", "Error: too many failed authentication attempts from your address; try again later"))
    }

    mutating func authenticationFailed() -> Action {
        state = .idle
        session.authFailures += 1
        if session.authFailures >= configuration.maxAuthFailures {
            state = .closed
            return .replyAndClose(SMTPReply(421, "4.7.0", "Error: too many failed authentication attempts"))
        }
        return .reply(SMTPReply(535, "5.7.8", "Error: authentication failed"))
    }

    mutating func auth(_ mechanism: String, _ initial: String?) -> Action {
        guard configuration.auth != .none else { return protocolError(SMTPReply(502, "5.5.1", "Error: authentication not enabled")) }
        guard session.tls else {
            return protocolError(SMTPReply(538, "5.7.11", "Encryption required for requested authentication mechanism"))
        }
        guard session.helo != nil, session.extended || configuration.authAfterHelo else {
            return protocolError(SMTPReply(503, "5.5.1", "Error: send EHLO first"))
        }
        guard session.authenticatedUser == nil else { return protocolError(SMTPReply(503, "5.5.1", "Error: already authenticated")) }
        guard case .idle = state else { return protocolError(SMTPReply(503, "5.5.1", "Error: AUTH not allowed in a mail transaction")) }
        switch mechanism {
        case "PLAIN":
            if let initial {
                return authResponse(.plain, initial)
            }
            state = .authExchange(.plain)
            return .reply(SMTPReply(code: 334, enhancedCode: nil, lines: [""]))
        case "LOGIN":
            if let initial {
                return authResponse(.loginUsername, initial)
            }
            state = .authExchange(.loginUsername)
            return .reply(SMTPReply(code: 334, enhancedCode: nil, lines: [Base64.encode("Username:")]))
        default:
            return protocolError(SMTPReply(504, "5.5.4", "Error: unsupported authentication mechanism"))
        }
    }

    /// A response line over ``SMTPLimits/maxAuthLine`` (the framer skipped it): the
    /// exchange ends with the refusal, so the next line is a command again.
    mutating func authLineTooLong() -> Action {
        state = .idle
        return protocolError(SMTPReply(500, "5.5.6", "Error: authentication exchange line too long"))
    }

    mutating func authResponse(_ step: AuthStep, _ line: String) -> Action {
        state = .idle
        if line == "*" { return protocolError(SMTPReply(501, "5.0.0", "Authentication cancelled")) }
        guard line.utf8.count <= SMTPLimits.maxAuthLine else { return authLineTooLong() }
        // "=" is an empty initial response (RFC 4954 §4).
        let text = line == "=" ? "" : line
        do throws(SASL.Failure) {
            switch step {
            case .plain:
                let (user, password) = try SASL.decodePlain(text)
                return verify(user, password, "PLAIN")
            case .loginUsername:
                let user = try SASL.decodeLoginField(text)
                guard !user.isEmpty else { return protocolError(SMTPReply(501, "5.5.2", "Error: empty username")) }
                state = .authExchange(.loginPassword(username: user))
                return .reply(SMTPReply(code: 334, enhancedCode: nil, lines: [Base64.encode("Password:")]))
            case .loginPassword(let user):
                let password = try SASL.decodeLoginField(text)
                return verify(user, password, "LOGIN")
            }
        } catch {
            if error.reply.code == 535 { return authenticationFailed() }
            return protocolError(error.reply)
        }
    }

    mutating func verify(_ user: String, _ password: String, _ mechanism: String) -> Action {
        // RFC 4513 §6.3.1: an empty password must never reach a directory bind.
        if password.isEmpty {
            return authenticationFailed()
        }
        state = .verifyingCredentials(user: user, mechanism: mechanism)
        return .verifyCredentials(SASLCredentials(username: user, password: password, mechanism: mechanism), request(.auth))
    }
}
