/// Decoding of the SASL mechanisms Tollgate offers: PLAIN (RFC 4616) and LOGIN.
public enum SASL {
    public struct Failure: Error, Sendable, Hashable {
        public var reply: SMTPReply
    }

    /// The mechanisms offered after TLS, in EHLO order.
    public static let mechanisms = ["PLAIN", "LOGIN"]

    /// `message = [authzid] UTF8NUL authcid UTF8NUL passwd`. Exactly three fields; an
    /// authorization identity other than the authentication identity is refused
    /// (RFC 4616 §2 lets the server decide; chasquid refuses it too).
    public static func decodePlain(_ base64: String) throws(Failure) -> (username: String, password: String) {
        guard let bytes = Base64.decode(base64) else { throw Failure(reply: SMTPReply(501, "5.5.2", "Error: invalid base64 data")) }
        let fields = bytes.split(separator: 0, omittingEmptySubsequences: false)
        guard fields.count == 3 else { throw Failure(reply: SMTPReply(501, "5.5.2", "Error: malformed AUTH PLAIN response")) }
        guard let authz = String(validating: fields[0], as: UTF8.self),
            let user = String(validating: fields[1], as: UTF8.self),
            let password = String(validating: fields[2], as: UTF8.self)
        else { throw Failure(reply: SMTPReply(501, "5.5.2", "Error: AUTH response is not UTF-8")) }
        guard !user.isEmpty else { throw Failure(reply: SMTPReply(501, "5.5.2", "Error: empty authentication identity")) }
        guard authz.isEmpty || authz == user else {
            throw Failure(reply: SMTPReply(535, "5.7.8", "Error: authorization identity differs from authentication identity"))
        }
        return (user, password)
    }

    /// One base64 line of an AUTH LOGIN exchange. NUL is kept: the verifier must
    /// escape it (RFC 4515) or refuse it.
    public static func decodeLoginField(_ base64: String) throws(Failure) -> String {
        guard let bytes = Base64.decode(base64), let text = String(validating: bytes, as: UTF8.self) else {
            throw Failure(reply: SMTPReply(501, "5.5.2", "Error: invalid base64 data"))
        }
        return text
    }
}

/// RFC 4648 base64, strict (padding required, no whitespace).
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var it = bytes.makeIterator()
        while let a = it.next() {
            let b = it.next()
            let c = it.next()
            out.append(alphabet[Int(a >> 2)])
            out.append(alphabet[Int((a & 0x03) << 4 | (b ?? 0) >> 4)])
            out.append(b == nil ? UInt8(ascii: "=") : alphabet[Int(((b ?? 0) & 0x0f) << 2 | (c ?? 0) >> 6)])
            out.append(c == nil ? UInt8(ascii: "=") : alphabet[Int((c ?? 0) & 0x3f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func encode(_ string: String) -> String { encode(Array(string.utf8)) }

    public static func decode(_ text: String) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(input.count / 4 * 3)
        var i = 0
        while i < input.count {
            var values = [UInt8](repeating: 0, count: 4)
            var padding = 0
            for k in 0..<4 {
                let c = input[i + k]
                if c == UInt8(ascii: "=") {
                    guard i + 4 == input.count, k >= 2 else { return nil }
                    padding += 1
                    continue
                }
                guard padding == 0, let v = value(c) else { return nil }
                values[k] = v
            }
            out.append(values[0] << 2 | values[1] >> 4)
            if padding < 2 { out.append(values[1] << 4 | values[2] >> 2) }
            if padding < 1 { out.append(values[2] << 6 | values[3]) }
            i += 4
        }
        return out
    }

    private static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}

/// Credentials a client gave with `AUTH PLAIN` or `AUTH LOGIN`, for a verifier.
public struct SASLCredentials: Sendable, Hashable {
    /// The authentication identity (the login name).
    public var username: String
    /// The password. Never log it.
    public var password: String
    /// The mechanism the client used, upper-case (`PLAIN`, `LOGIN`).
    public var mechanism: String

    public init(username: String, password: String, mechanism: String) {
        self.username = username
        self.password = password
        self.mechanism = mechanism
    }
}
