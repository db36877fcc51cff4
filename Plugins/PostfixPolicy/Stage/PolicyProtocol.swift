import TollgatePolicy

/// The SMTP access policy delegation protocol (Postfix's SMTPD_POLICY_README):
/// a request is `name=value` lines ended by an empty line; the answer is
/// `action=...` and an empty line.
public enum PolicyProtocol {
    /// The attributes Postfix 3.x sends, in its order. Those Tollgate does not know are sent empty.
    public static let attributeNames = [
        "request", "protocol_state", "protocol_name", "helo_name", "queue_id", "sender", "recipient",
        "recipient_count", "client_address", "client_name", "reverse_client_name", "instance",
        "sasl_method", "sasl_username", "sasl_sender", "size", "ccert_subject", "ccert_issuer",
        "ccert_fingerprint", "ccert_pubkey_fingerprint", "encryption_protocol", "encryption_cipher",
        "encryption_keysize", "etrn_domain", "stress", "client_port", "policy_context",
        "server_address", "server_port", "compatibility_level", "mail_version",
    ]

    /// `protocol_state` for a phase (`data` is Postfix's END-OF-MESSAGE: the whole message is known).
    public static func protocolState(_ phase: PolicyPhase) -> String {
        switch phase {
        case .connect: return "CONNECT"
        case .helo: return "EHLO"
        case .mail: return "MAIL"
        case .rcpt: return "RCPT"
        case .data: return "END-OF-MESSAGE"
        case .starttls: return "STARTTLS"
        case .auth: return "AUTH"
        }
    }

    /// The attributes of one request, in ``attributeNames`` order.
    public static func attributes(for context: PolicyContext, instance: String, policyContext: String) -> [(String, String)] {
        var values: [String: String] = [:]
        values["request"] = "smtpd_access_policy"
        values["protocol_state"] = protocolState(context.phase)
        // Tollgate advertises ESMTP; it does not tell a stage whether the client said HELO or EHLO.
        values["protocol_name"] = context.phase == .connect && context.helo == nil ? "" : "ESMTP"
        values["helo_name"] = context.helo ?? ""
        values["sender"] = context.sender ?? ""
        values["recipient"] = context.phase == .rcpt ? (context.recipient ?? "") : (context.recipients.count == 1 && context.phase == .data ? context.recipients[0] : "")
        // As Postfix: the number of accepted recipients, known from DATA on; 0 before.
        values["recipient_count"] = context.phase == .data ? "\(context.recipients.count)" : "0"
        values["client_address"] = context.clientAddress
        let connection = context.connection
        // As Postfix: "unknown" when the name is not known (no PTR, not
        // forward-confirmed, or lookups off as with smtpd_peername_lookup = no).
        values["client_name"] = connection.clientName ?? "unknown"
        values["reverse_client_name"] = connection.reverseClientName ?? "unknown"
        values["client_port"] = connection.clientPort.map(String.init) ?? ""
        values["server_address"] = connection.serverAddress ?? ""
        values["server_port"] = connection.serverPort.map(String.init) ?? ""
        values["queue_id"] = context.queueID ?? ""
        values["instance"] = instance
        values["sasl_username"] = context.authenticatedUser ?? ""
        values["sasl_method"] = context.authenticatedUser == nil ? "" : (connection.saslMethod ?? "")
        if let tls = connection.tls {
            values["encryption_protocol"] = tls.protocolVersion
            values["encryption_cipher"] = tls.cipher
            values["encryption_keysize"] = tls.cipherBits.map(String.init) ?? ""
            if let certificate = tls.clientCertificate {
                values["ccert_subject"] = certificate.subject
                values["ccert_issuer"] = certificate.issuer
                values["ccert_fingerprint"] = certificate.fingerprint
                values["ccert_pubkey_fingerprint"] = certificate.publicKeyFingerprint
            }
        }
        values["size"] = "\(context.messageSize ?? 0)"
        values["policy_context"] = policyContext
        values["mail_version"] = "tollgate"
        return attributeNames.map { ($0, sanitize(values[$0] ?? "")) }
    }

    /// One request on the wire.
    public static func encode(_ attributes: [(String, String)]) -> [UInt8] {
        var text = ""
        for (name, value) in attributes { text += "\(name)=\(value)\n" }
        text += "\n"
        return Array(text.utf8)
    }

    /// A value may not contain a newline (it would end the attribute or the request).
    static func sanitize(_ value: String) -> String {
        String(value.map { $0 == "\n" || $0 == "\r" || $0 == "\0" ? " " : $0 })
    }

    /// The `action=` value of an answer (the lines before the empty line), or `nil`
    /// when there is none.
    public static func action(inAnswer lines: [String]) -> String? {
        for line in lines where line.hasPrefix("action=") {
            return String(line.dropFirst("action=".count))
        }
        return nil
    }
}

/// What an answer's action means for Tollgate (Postfix's access(5)).
public enum PolicyAction: Sendable, Hashable {
    case reject(PolicyReply)
    case `defer`(PolicyReply)
    /// DUNNO, OK and an all-numerical answer.
    case `continue`(keyword: String)
    case prepend(name: String, value: String)
    case hold(String)
    case discard(String)
    case warn(String)
    /// BCC, INFO and other answers that do not change the verdict: logged only.
    case ignored(keyword: String, text: String)
    /// REDIRECT, FILTER: not supported; the stage fails (its `on_error`).
    case unsupported(keyword: String)

    public struct Garbage: Error, CustomStringConvertible {
        public var answer: String
        public var description: String { "the policy server's answer is not an access(5) action: '\(answer)'" }
    }

    /// Parses an action; throws ``Garbage`` for anything access(5) does not define.
    public static func parse(_ action: String) throws(Garbage) -> PolicyAction {
        let trimmed = action.trimmingSpaces
        let keywordEnd = trimmed.firstIndex(where: { $0 == " " || $0 == "\t" }) ?? trimmed.endIndex
        let keyword = String(trimmed[..<keywordEnd])
        let text = String(trimmed[keywordEnd...]).trimmingSpaces
        let upper = keyword.uppercased()
        if keyword.count == 3, let code = Int(keyword), (400...599).contains(code), keyword.first == "4" || keyword.first == "5" {
            let (enhanced, rest) = splitEnhanced(text, classDigit: keyword.first!)
            let reply = PolicyReply(code: code, enhancedCode: enhanced ?? (code >= 500 ? "5.7.1" : "4.7.1"), text: rest.isEmpty ? "Access denied" : rest)
            return code >= 500 ? .reject(reply) : .defer(reply)
        }
        if text.isEmpty, !keyword.isEmpty, keyword.allSatisfy({ $0.isASCII && $0.isNumber }) { return .continue(keyword: keyword) }
        switch upper {
        case "REJECT":
            let (enhanced, rest) = splitEnhanced(text, classDigit: "5")
            return .reject(PolicyReply(code: 554, enhancedCode: enhanced ?? "5.7.1", text: rest.isEmpty ? "Access denied" : rest))
        case "DEFER", "DEFER_IF_PERMIT", "DEFER_IF_REJECT":
            let (enhanced, rest) = splitEnhanced(text, classDigit: "4")
            return .defer(PolicyReply(code: 450, enhancedCode: enhanced ?? "4.7.1", text: rest.isEmpty ? "Service unavailable" : rest))
        case "DUNNO", "OK":
            return .continue(keyword: upper)
        case "PREPEND":
            guard let colon = text.firstIndex(of: ":"), !text[..<colon].isEmpty,
                text[..<colon].allSatisfy({ $0.isASCII && $0 > " " && $0 != ":" && $0 != "\u{7F}" })
            else { throw Garbage(answer: action) }
            return .prepend(name: String(text[..<colon]), value: String(text[text.index(after: colon)...]).trimmingSpaces)
        case "HOLD": return .hold(text)
        case "DISCARD": return .discard(text)
        case "WARN": return .warn(text)
        case "BCC", "INFO": return .ignored(keyword: upper, text: text)
        case "REDIRECT", "FILTER": return .unsupported(keyword: upper)
        default: throw Garbage(answer: action)
        }
    }

    /// An RFC 3463 code at the start of `text` of the reply's class (`5.7.1 text`).
    static func splitEnhanced(_ text: String, classDigit: Character) -> (String?, String) {
        let end = text.firstIndex(of: " ") ?? text.endIndex
        let candidate = text[..<end]
        let parts = candidate.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
            candidate.first == classDigit
        else { return (nil, text) }
        return (String(candidate), String(text[end...]).trimmingSpaces)
    }
}
