/// Parses one command line (without its CRLF) into an ``SMTPCommand``.
///
/// A failure carries the reply to send; the session goes on (RFC 5321 §4.2.4 and
/// KumoMTA's "random bytes" rule: a malformed command never tears the connection down).
public struct SMTPCommandParser: Sendable {
    /// Whether MAIL FROM and RCPT TO need `<>` (Postfix `strict_rfc821_envelopes`). When
    /// false, `MAIL FROM:a@b` and `RCPT TO:a@b` are read as if bracketed: the address
    /// ends at the first space and parameters may follow.
    public var strictEnvelopes: Bool
    /// The domain given to the bare `RCPT TO:<Postmaster>` (RFC 5321 §4.1.1.3, which a
    /// server must accept): the relay's own hostname. Without one it is refused as before.
    public var postmasterDomain: String?

    public init(strictEnvelopes: Bool = false, postmasterDomain: String? = nil) {
        self.strictEnvelopes = strictEnvelopes
        self.postmasterDomain = postmasterDomain
    }

    public struct Failure: Error, Sendable, Hashable {
        public var reply: SMTPReply
        /// Whether the line looked like HTTP: the session should close after replying.
        public var isForeignProtocol: Bool

        init(_ reply: SMTPReply, foreign: Bool = false) {
            self.reply = reply
            self.isForeignProtocol = foreign
        }
    }

    public func parse(_ line: ArraySlice<UInt8>) throws(Failure) -> SMTPCommand {
        if line.contains(0) { throw Failure(SMTPReply(500, "5.5.2", "Error: NUL character in command")) }
        let verbEnd = line.firstIndex(of: UInt8(ascii: " ")) ?? line.endIndex
        let verb = String(decoding: line[line.startIndex..<verbEnd], as: UTF8.self).uppercased()
        var rest = line[verbEnd...]
        if rest.first == UInt8(ascii: " ") { rest = rest.dropFirst() }
        let argument = rest

        func noArguments(_ command: SMTPCommand) throws(Failure) -> SMTPCommand {
            guard argument.allSatisfy({ $0 == UInt8(ascii: " ") }) else {
                throw Failure(SMTPReply(501, "5.5.4", "Syntax: \(verb)"))
            }
            return command
        }

        switch verb {
        case "HELO", "EHLO":
            let name = String(decoding: argument, as: UTF8.self).trimmingSpaces()
            guard !name.isEmpty, !name.contains(" ") || verb == "HELO" else {
                throw Failure(SMTPReply(501, "5.5.4", "Syntax: \(verb) hostname"))
            }
            guard name.utf8.count <= SMTPLimits.maxDomain + 2, name.utf8.allSatisfy({ $0 > 32 && $0 < 127 || $0 == 32 }) else {
                throw Failure(SMTPReply(501, "5.5.4", "Syntax: \(verb) hostname"))
            }
            return verb == "EHLO" ? .ehlo(name) : .helo(name)
        case "MAIL":
            return try parseMail(argument)
        case "RCPT":
            return try parseRcpt(argument)
        case "DATA":
            return try noArguments(.data)
        case "BDAT":
            return try parseBDAT(argument)
        case "RSET":
            return try noArguments(.rset)
        case "NOOP":
            return .noop
        case "QUIT":
            return try noArguments(.quit)
        case "VRFY":
            return .vrfy(String(decoding: argument, as: UTF8.self))
        case "EXPN":
            return .expn(String(decoding: argument, as: UTF8.self))
        case "HELP":
            return .help
        case "STARTTLS":
            guard argument.isEmpty else { throw Failure(SMTPReply(501, "5.5.4", "Syntax: STARTTLS")) }
            return .startTLS
        case "AUTH":
            let parts = String(decoding: argument, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 1 || parts.count == 2 else { throw Failure(SMTPReply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]")) }
            return .auth(mechanism: parts[0].uppercased(), initialResponse: parts.count == 2 ? String(parts[1]) : nil)
        case "GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS", "DELETE":
            throw Failure(SMTPReply(502, "5.5.1", "Error: this is an SMTP server"), foreign: true)
        default:
            throw Failure(.syntaxError)
        }
    }

    // mail = "MAIL FROM:" Reverse-path [SP Mail-parameters] CRLF
    func parseMail(_ argument: ArraySlice<UInt8>) throws(Failure) -> SMTPCommand {
        let pathStart = try afterPrefix("FROM:", argument, syntax: "MAIL FROM:<address>")
        // Parameters decide whether UTF-8 is allowed in the path, so read them first.
        let (pathBytes, paramsBytes) = splitPath(argument[pathStart...])
        let params = try parseMailParameters(paramsBytes)
        let parser = AddressParser(allowUTF8: params.smtpUTF8)
        let parsed: AddressParser.ParsedPath
        do throws(AddressParser.Failure) {
            parsed = try path(pathBytes, parser)
        } catch {
            // RFC 6531 §3.5: a non-ASCII sender without SMTPUTF8 is 553 5.6.7, as a recipient is.
            if !params.smtpUTF8, let p = try? path(pathBytes, AddressParser(allowUTF8: true)), p.mailbox != nil {
                throw Failure(SMTPReply(553, "5.6.7", "Error: this address requires SMTPUTF8"))
            }
            throw Failure(SMTPReply(501, "5.1.7", "Bad sender address syntax: \(error.reason)"))
        }
        let path: ReversePath = parsed.mailbox.map { .mailbox($0) } ?? .null
        return .mail(path, params)
    }

    // rcpt = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" / Forward-path ) [SP Rcpt-parameters] CRLF
    func parseRcpt(_ argument: ArraySlice<UInt8>) throws(Failure) -> SMTPCommand {
        let pathStart = try afterPrefix("TO:", argument, syntax: "RCPT TO:<address>")
        let (pathBytes, paramsBytes) = splitPath(argument[pathStart...])
        let params = try parseRcptParameters(paramsBytes)
        if let postmasterDomain, isBarePostmaster(pathBytes) {
            return .rcpt(Mailbox(localPart: "Postmaster", domain: postmasterDomain), params, hadSourceRoute: false)
        }
        let parser = AddressParser(allowUTF8: true)
        do throws(AddressParser.Failure) {
            let parsed = try path(pathBytes, parser)
            guard let mailbox = parsed.mailbox else { throw AddressParser.Failure(reason: "recipient cannot be empty") }
            return .rcpt(mailbox, params, hadSourceRoute: parsed.hadSourceRoute)
        } catch {
            throw Failure(SMTPReply(501, "5.1.3", "Bad recipient address syntax: \(error.reason)"))
        }
    }

    func parseBDAT(_ argument: ArraySlice<UInt8>) throws(Failure) -> SMTPCommand {
        let parts = String(decoding: argument, as: UTF8.self).split(separator: " ")
        guard (1...2).contains(parts.count), parts[0].count <= 12, parts[0].allSatisfy(\.isASCIIDigit), let size = Int(parts[0]) else {
            throw Failure(SMTPReply(501, "5.5.4", "Syntax: BDAT chunk-size [LAST]"))
        }
        if parts.count == 2 {
            guard parts[1].uppercased() == "LAST" else { throw Failure(SMTPReply(501, "5.5.4", "Syntax: BDAT chunk-size [LAST]")) }
            return .bdat(size: size, last: true)
        }
        return .bdat(size: size, last: false)
    }

    /// Accepts `FROM:<a>` and the common broken form `FROM: <a>`.
    func afterPrefix(_ prefix: String, _ argument: ArraySlice<UInt8>, syntax: String) throws(Failure) -> Int {
        let p = Array(prefix.utf8)
        guard argument.count >= p.count,
            zip(argument.prefix(p.count), p).allSatisfy({ asciiUpper($0) == $1 })
        else { throw Failure(SMTPReply(501, "5.5.4", "Syntax: \(syntax)")) }
        var i = argument.startIndex + p.count
        while i < argument.endIndex, argument[i] == UInt8(ascii: " ") { i += 1 }
        return i
    }

    /// A whole path, bracketed or (without ``strictEnvelopes``) bare.
    func path(_ bytes: ArraySlice<UInt8>, _ parser: AddressParser) throws(AddressParser.Failure) -> AddressParser.ParsedPath {
        if !strictEnvelopes, let first = bytes.first, first != UInt8(ascii: "<") {
            let (mailbox, end) = try parser.parseMailbox(bytes)
            guard end == bytes.endIndex else { throw AddressParser.Failure(reason: "unexpected characters after address") }
            guard bytes.count <= SMTPLimits.maxPath else { throw AddressParser.Failure(reason: "address too long") }
            return AddressParser.ParsedPath(mailbox: mailbox, hadSourceRoute: false)
        }
        let (parsed, consumed) = try parser.parsePath(bytes)
        guard consumed == bytes.count else { throw AddressParser.Failure(reason: "unexpected characters after address") }
        return parsed
    }

    /// `<Postmaster>` in any case (or bare `Postmaster` without ``strictEnvelopes``).
    func isBarePostmaster(_ bytes: ArraySlice<UInt8>) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self).lowercased()
        return text == "<postmaster>" || (!strictEnvelopes && text == "postmaster")
    }

    /// Splits `<path> params` at the `>` that closes the path (quoted `>` skipped); a
    /// bare path (without ``strictEnvelopes``) ends at the first space.
    func splitPath(_ bytes: ArraySlice<UInt8>) -> (ArraySlice<UInt8>, ArraySlice<UInt8>) {
        if !strictEnvelopes, let first = bytes.first, first != UInt8(ascii: "<") {
            let end = bytes.firstIndex(of: UInt8(ascii: " ")) ?? bytes.endIndex
            return (bytes[..<end], bytes[end...])
        }
        var i = bytes.startIndex
        var inQuotes = false
        while i < bytes.endIndex {
            let b = bytes[i]
            if inQuotes, b == UInt8(ascii: "\\") { i += 2; continue }
            if b == UInt8(ascii: "\"") { inQuotes.toggle() }
            if !inQuotes, b == UInt8(ascii: ">") {
                return (bytes[bytes.startIndex...i], bytes[(i + 1)...])
            }
            i += 1
        }
        return (bytes, bytes[bytes.endIndex...])
    }

    // Mail-parameters = esmtp-param *(SP esmtp-param)
    // esmtp-param = esmtp-keyword ["=" esmtp-value]
    // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
    // esmtp-value = 1*(%d33-60 / %d62-126)   (and UTF-8 under RFC 6531)
    func parameters(_ bytes: ArraySlice<UInt8>) throws(Failure) -> [(String, String?)] {
        var result: [(String, String?)] = []
        for token in bytes.split(separator: UInt8(ascii: " ")) {
            let eq = token.firstIndex(of: UInt8(ascii: "="))
            let keywordBytes = token[token.startIndex..<(eq ?? token.endIndex)]
            guard let first = keywordBytes.first, SMTPGrammar.isLetDig(first),
                keywordBytes.allSatisfy({ SMTPGrammar.isLetDig($0) || $0 == UInt8(ascii: "-") })
            else { throw Failure(SMTPReply(501, "5.5.4", "Error: malformed parameter")) }
            var value: String?
            if let eq {
                let v = token[(eq + 1)...]
                guard !v.isEmpty, v.allSatisfy({ ($0 >= 33 && $0 != 61 && $0 <= 126) || $0 >= 0x80 }) else {
                    throw Failure(SMTPReply(501, "5.5.4", "Error: malformed parameter value"))
                }
                value = String(decoding: v, as: UTF8.self)
            }
            let keyword = String(decoding: keywordBytes, as: UTF8.self).uppercased()
            guard !result.contains(where: { $0.0 == keyword }) else { throw Failure(SMTPReply(501, "5.5.4", "Error: duplicate parameter \(keyword)")) }
            result.append((keyword, value))
        }
        return result
    }

    func parseMailParameters(_ bytes: ArraySlice<UInt8>) throws(Failure) -> MailParameters {
        var params = MailParameters()
        for (keyword, value) in try parameters(bytes) {
            switch (keyword, value) {
            case ("SIZE", let v?):
                guard v.count <= 15, v.allSatisfy(\.isASCIIDigit), let n = Int(v) else { throw Failure(SMTPReply(501, "5.5.4", "Error: bad SIZE parameter")) }
                params.size = n
            case ("BODY", let v?):
                guard let body = BodyType(rawValue: v.uppercased()) else { throw Failure(SMTPReply(501, "5.5.4", "Error: unsupported BODY type")) }
                params.body = body
            case ("SMTPUTF8", nil):
                params.smtpUTF8 = true
            case ("RET", let v?):
                guard ["FULL", "HDRS"].contains(v.uppercased()) else { throw Failure(SMTPReply(501, "5.5.4", "Error: bad RET parameter")) }
                params.ret = v.uppercased()
            case ("ENVID", let v?):
                guard v.utf8.count <= 100 else { throw Failure(SMTPReply(501, "5.5.4", "Error: ENVID too long")) }
                params.envelopeID = v
            case ("AUTH", let v?):
                params.auth = v
            default:
                throw Failure(SMTPReply(555, "5.5.4", "Error: unsupported MAIL parameter \(keyword)"))
            }
        }
        return params
    }

    func parseRcptParameters(_ bytes: ArraySlice<UInt8>) throws(Failure) -> RecipientParameters {
        var params = RecipientParameters()
        for (keyword, value) in try parameters(bytes) {
            switch (keyword, value) {
            case ("NOTIFY", let v?):
                let values = v.uppercased().split(separator: ",").map(String.init)
                let valid = values == ["NEVER"] || (!values.isEmpty && values.allSatisfy { ["SUCCESS", "FAILURE", "DELAY"].contains($0) })
                guard valid else { throw Failure(SMTPReply(501, "5.5.4", "Error: bad NOTIFY parameter")) }
                params.notify = values
            case ("ORCPT", let v?):
                guard v.contains(";"), v.utf8.count <= 500 else { throw Failure(SMTPReply(501, "5.5.4", "Error: bad ORCPT parameter")) }
                params.originalRecipient = v
            default:
                throw Failure(SMTPReply(555, "5.5.4", "Error: unsupported RCPT parameter \(keyword)"))
            }
        }
        return params
    }
}

@inline(__always)
func asciiUpper(_ b: UInt8) -> UInt8 {
    (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) ? b - 32 : b
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
