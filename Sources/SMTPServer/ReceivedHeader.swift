import SMTPCore

/// The `Received:` trace header Tollgate prepends (RFC 5321 §4.4, RFC 3848 protocol names).
public enum ReceivedHeader {
    public static func make(
        helo: String?,
        clientAddress: String,
        clientName: String? = nil,
        hostname: String,
        protocolName: String,
        queueID: String,
        recipient: String?,
        date: Double
    ) -> String {
        // TCP-info (RFC 5321 §4.4): the verified name, then the address.
        let name = clientName.map { sanitize($0) + " " } ?? ""
        var header = "Received: from \(sanitize(helo ?? "unknown")) (\(name)[\(sanitize(clientAddress))])\r\n"
        header += "\tby \(sanitize(hostname)) (Tollgate) with \(protocolName) id \(queueID)"
        if let recipient {
            header += "\r\n\tfor <\(sanitize(recipient))>; \(MessageDate.rfc5322(date))\r\n"
        } else {
            header += ";\r\n\t\(MessageDate.rfc5322(date))\r\n"
        }
        return header
    }

    /// RFC 3848: ESMTP, ESMTPS (TLS), ESMTPA (AUTH), ESMTPSA (both); SMTP for HELO.
    public static func protocolName(extended: Bool, tls: Bool, authenticated: Bool) -> String {
        guard extended else { return "SMTP" }
        return "ESMTP" + (tls ? "S" : "") + (authenticated ? "A" : "")
    }

    /// Keeps printable ASCII only and bounds the length, so a client's EHLO cannot
    /// inject header lines (RELIABILITY C21).
    static func sanitize(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars.prefix(255) {
            if scalar.value > 32, scalar.value < 127, scalar != "(", scalar != ")", scalar != ";" {
                out.unicodeScalars.append(scalar)
            } else {
                out.append("_")
            }
        }
        return out.isEmpty ? "unknown" : out
    }
}
