extension SMTPTestClient {
    /// Connects, reads the greeting, sends EHLO, MAIL FROM, one RCPT TO per
    /// recipient and DATA, then `data` dot-stuffed (see ``dotStuffed(_:)``)
    /// and the final dot, and returns the reply to the dot; then QUIT.
    /// Throws ``TestSupportError/Kind/unexpectedReply`` if an earlier step is refused.
    public static func sendMessage(
        host: String = "127.0.0.1",
        port: Int,
        from: String,
        to recipients: [String],
        data: [UInt8],
        ehlo: String = "client.tollgate.test",
        timeout: Double = 10,
        source: String? = nil
    ) throws -> SMTPTestReply {
        let client = SMTPTestClient(readTimeout: timeout)
        defer { client.close() }
        try client.connect(host: host, port: port, source: source)
        let greeting = try client.readReply()
        guard greeting.code == 220 else {
            throw TestSupportError(.unexpectedReply, "greeting", reply: greeting)
        }
        try client.command("EHLO \(ehlo)", expect: 250)
        try client.command("MAIL FROM:<\(from)>", expect: 250)
        for recipient in recipients {
            try client.command("RCPT TO:<\(recipient)>", expect: 250)
        }
        try client.command("DATA", expect: 354)
        try client.sendRaw(dotStuffed(data) + Array(".\r\n".utf8))
        let reply = try client.readReply()
        _ = try? client.command("QUIT")
        return reply
    }

    /// `data` ready to follow DATA's 354: a "." is added before every line
    /// that begins with "." (at the start or after CRLF; RFC 5321 §4.5.2),
    /// and CRLF is appended if `data` does not end with one. Nothing else
    /// changes: bare CR and LF go out as they are.
    public static func dotStuffed(_ data: [UInt8]) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(data.count + 16)
        var atLineStart = true
        var previous: UInt8 = 0
        for byte in data {
            if atLineStart && byte == UInt8(ascii: ".") { result.append(byte) }
            result.append(byte)
            atLineStart = previous == 0x0D && byte == 0x0A
            previous = byte
        }
        if !(data.count >= 2 && data[data.count - 2] == 0x0D && data[data.count - 1] == 0x0A) {
            result += [0x0D, 0x0A]
        }
        return result
    }
}
