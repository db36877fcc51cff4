import NIOCore
import SMTPCore

/// A command line the client sends, validated when built: no argument may carry CR, LF
/// or NUL (RELIABILITY C18, go-smtp's `validateLine`), so no value from the envelope,
/// a policy stage or LDAP can smuggle a second command onto the wire.
struct ClientCommand: Sendable, Hashable, CustomStringConvertible {
    /// The line without its CRLF.
    let line: String
    /// For logs: the verb, and the arguments unless they are secret.
    let description: String

    private init(line: String, description: String? = nil) {
        self.line = line
        self.description = description ?? line
    }

    func write(to buffer: inout ByteBuffer) {
        buffer.writeString(line)
        buffer.writeStaticString("\r\n")
    }

    static let startTLS = ClientCommand(line: "STARTTLS")
    static let data = ClientCommand(line: "DATA")
    static let rset = ClientCommand(line: "RSET")
    static let quit = ClientCommand(line: "QUIT")

    static func ehlo(_ name: String) throws(SMTPClientError) -> ClientCommand {
        try checkLineSafe(name, what: "EHLO name")
        try checkToken(name, what: "EHLO name")
        return ClientCommand(line: "EHLO \(name)")
    }

    static func helo(_ name: String) throws(SMTPClientError) -> ClientCommand {
        try checkLineSafe(name, what: "HELO name")
        try checkToken(name, what: "HELO name")
        return ClientCommand(line: "HELO \(name)")
    }

    /// `AUTH mechanism [initial-response]` (RFC 4954 §4); the response is never logged.
    static func auth(mechanism: String, initialResponse: String?) throws(SMTPClientError) -> ClientCommand {
        try checkToken(mechanism, what: "AUTH mechanism")
        guard let initialResponse else { return ClientCommand(line: "AUTH \(mechanism)") }
        try checkToken(initialResponse, what: "AUTH response")
        return ClientCommand(line: "AUTH \(mechanism) \(initialResponse)", description: "AUTH \(mechanism) <redacted>")
    }

    /// One line of a SASL exchange (base64), never logged.
    static func saslResponse(_ base64: String) throws(SMTPClientError) -> ClientCommand {
        try checkLineSafe(base64, what: "AUTH response")
        return ClientCommand(line: base64, description: "<redacted>")
    }

    // mail = "MAIL FROM:" Reverse-path [SP Mail-parameters] CRLF
    static func mail(from sender: String, parameters: [String]) throws(SMTPClientError) -> ClientCommand {
        try checkPath(sender, allowNull: true, what: "sender")
        for parameter in parameters { try checkToken(parameter, what: "MAIL parameter") }
        return ClientCommand(line: (["MAIL FROM:<\(sender)>"] + parameters).joined(separator: " "))
    }

    // rcpt = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" / Forward-path )
    //        [SP Rcpt-parameters] CRLF
    static func rcpt(to recipient: String, parameters: [String]) throws(SMTPClientError) -> ClientCommand {
        try checkPath(recipient, allowNull: false, what: "recipient")
        for parameter in parameters { try checkToken(parameter, what: "RCPT parameter") }
        return ClientCommand(line: (["RCPT TO:<\(recipient)>"] + parameters).joined(separator: " "))
    }

    /// Refuses CR, LF and NUL anywhere.
    static func checkLineSafe(_ value: String, what: String) throws(SMTPClientError) {
        if value.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) {
            throw .invalidArgument("\(what) containing CR, LF or NUL")
        }
    }

    /// A single word: no controls, no spaces, not empty.
    static func checkToken(_ value: String, what: String) throws(SMTPClientError) {
        try checkLineSafe(value, what: what)
        guard !value.isEmpty, !value.utf8.contains(where: { $0 <= 32 || $0 == 127 }) else {
            throw .invalidArgument("\(what) containing spaces or control characters")
        }
    }

    /// An address as it goes between `<` and `>`: must parse as an RFC 5321 mailbox,
    /// so it cannot close the brackets early and append parameters of its own.
    static func checkPath(_ address: String, allowNull: Bool, what: String) throws(SMTPClientError) {
        try checkLineSafe(address, what: what)
        if address.isEmpty {
            guard allowNull else { throw .invalidArgument("empty \(what)") }
            return
        }
        do {
            _ = try AddressParser(allowUTF8: true).parseMailbox(address)
        } catch {
            throw .invalidArgument("\(what) address (\(error.reason))")
        }
    }
}
