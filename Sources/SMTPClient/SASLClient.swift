import SMTPCore

/// The client side of AUTH (RFC 4954): PLAIN (RFC 4616) when offered, else LOGIN.
/// Pure: produces the lines to send for each server challenge.
struct SASLClient: Sendable {
    enum Mechanism: String, Sendable {
        case plain = "PLAIN"
        case login = "LOGIN"
    }

    enum Step: Sendable, Hashable {
        case send(ClientCommand)
        case succeeded
        case failed(SMTPReply)
    }

    let mechanism: Mechanism
    private let username: String
    private let password: String
    private var sentLogin = 0

    /// `nil` when the server offers neither mechanism.
    init?(offered: Set<String>, username: String, password: String) {
        if offered.contains("PLAIN") {
            mechanism = .plain
        } else if offered.contains("LOGIN") {
            mechanism = .login
        } else {
            return nil
        }
        self.username = username
        self.password = password
    }

    /// Credentials are refused up front when they could not be encoded faithfully:
    /// PLAIN separates fields with NUL.
    static func validate(username: String, password: String) throws(SMTPClientError) {
        for (value, what) in [(username, "username"), (password, "password")] {
            if value.utf8.contains(0) { throw .invalidArgument("AUTH \(what) containing NUL") }
        }
        if username.isEmpty { throw .invalidArgument("empty AUTH username") }
    }

    // message = [authzid] UTF8NUL authcid UTF8NUL passwd  (RFC 4616 §2)
    private var plainResponse: String {
        Base64.encode([0] + Array(username.utf8) + [0] + Array(password.utf8))
    }

    func start() throws(SMTPClientError) -> ClientCommand {
        switch mechanism {
        case .plain: return try .auth(mechanism: "PLAIN", initialResponse: plainResponse)
        case .login: return try .auth(mechanism: "LOGIN", initialResponse: nil)
        }
    }

    mutating func received(_ reply: SMTPReply) throws(SMTPClientError) -> Step {
        if reply.code == 235 { return .succeeded }
        guard reply.code == 334 else { return .failed(reply) }
        switch mechanism {
        case .plain:
            // A server that ignores the initial response asks with an empty challenge.
            guard sentLogin == 0 else { return .failed(reply) }
            sentLogin = 1
            return .send(try .saslResponse(plainResponse))
        case .login:
            // Challenges are "Username:" then "Password:" (base64); sent in that order.
            sentLogin += 1
            switch sentLogin {
            case 1: return .send(try .saslResponse(Base64.encode(username)))
            case 2: return .send(try .saslResponse(Base64.encode(password)))
            default: return .failed(reply)
            }
        }
    }
}
