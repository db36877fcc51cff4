import DKIMKeys
import Foundation
import TollgatePolicy

/// Makes the DKIM-Signature header field of a message (RFC 6376 §5).
public struct DKIMSigner: Sendable {
    public var key: DKIMKey
    /// `d=`: the signing domain.
    public var domain: String
    /// `s=`: the selector under `_domainkey.<domain>`.
    public var selector: String
    /// The header fields to sign, lower-case, in order (From first by default).
    public var headers: [String]
    public var headerCanonicalization: DKIMCanonicalization
    public var bodyCanonicalization: DKIMCanonicalization
    /// Sign each listed field once more than it occurs, so that no field of that
    /// name can be added later without breaking the signature (§8.15). Always done
    /// for From.
    public var overSignAll: Bool

    /// Fields never signed: trace fields (RFC 5322 §3.6.7), which every hop adds to.
    public static let neverSigned: Set<String> = ["received", "return-path"]
    /// SPEC §7's default list.
    public static let defaultHeaders = ["from", "to", "cc", "subject", "date", "message-id", "mime-version", "content-type", "reply-to"]

    public init(key: DKIMKey, domain: String, selector: String, headers: [String] = DKIMSigner.defaultHeaders, header: DKIMCanonicalization = .relaxed, body: DKIMCanonicalization = .relaxed, overSignAll: Bool = false) {
        self.key = key
        self.domain = domain
        self.selector = selector
        self.headers = headers.map { $0.lowercased() }.filter { !Self.neverSigned.contains($0) }
        self.headerCanonicalization = header
        self.bodyCanonicalization = body
        self.overSignAll = overSignAll
    }

    /// The `h=` list for `message`: each configured field as often as it occurs
    /// (bottom-up order is the verifier's business, §5.4.2), From one more time.
    public func signedHeaderNames(_ message: MessageContent) -> [String] {
        var names: [String] = []
        for name in headers where !names.contains(name) {
            let count = message.fields.count(where: { $0.isNamed(name) })
            let extra = (name == "from" || overSignAll) ? 1 : 0
            names += Array(repeating: name, count: count + extra)
        }
        return names
    }

    /// The value of the DKIM-Signature field for `message` (folded, starting with a
    /// space), signed at `time` (seconds since 1970, the `t=` tag).
    public func signatureValue(for message: MessageContent, time: Double) throws -> String {
        let bodyHash = bodyCanonicalization.bodyHash(message.body)
        let names = signedHeaderNames(message)
        // Tags, one per folded line where long (§3.5); `b=` last, filled in below.
        var tags = [
            "v=1", "a=\(key.algorithm)", "c=\(headerCanonicalization.rawValue)/\(bodyCanonicalization.rawValue)",
            "d=\(domain)", "s=\(selector)", "t=\(Int(time))",
        ]
        tags.append("h=" + names.joined(separator: ":"))
        tags.append("bh=" + Data(bodyHash).base64EncodedString())
        let unsigned = " " + Self.fold(tags) + ";\r\n\tb="

        // The hash input (§3.7): the signed fields, each picked from the bottom up,
        // then this field with an empty b=, without its CRLF.
        var input: [UInt8] = []
        var used: [String: Int] = [:]
        for name in names {
            let instances = message.fields.indices.filter { message.fields[$0].isNamed(name) }
            let taken = used[name, default: 0]
            used[name] = taken + 1
            // A name listed more often than it occurs contributes nothing (the over-signing).
            guard taken < instances.count else { continue }
            input += headerCanonicalization.header(message.fields[instances[instances.count - 1 - taken]])
        }
        input += headerCanonicalization.header(HeaderField(name: "DKIM-Signature", value: String(unsigned.dropFirst())), terminated: false)
        let signature = Data(try key.sign(input)).base64EncodedString()
        return unsigned + Self.wrap(signature)
    }

    /// Tags joined by `; `, folded with CRLF TAB so no line passes 78 characters
    /// where a tag allows (h= is folded at its colons).
    static func fold(_ tags: [String]) -> String {
        var out = ""
        var column = "DKIM-Signature: ".count
        for (i, tag) in tags.enumerated() {
            let piece = tag + (i == tags.count - 1 ? "" : ";")
            if column + piece.count + 1 > 78, i > 0 {
                out += "\r\n\t"
                column = 1
            } else if i > 0 {
                out += " "
                column += 1
            }
            if tag.hasPrefix("h="), column + piece.count > 78 {
                // h= is a colon-separated list; FWS is allowed around the colons.
                var first = true
                for part in piece.split(separator: ":", omittingEmptySubsequences: false) {
                    let chunk = (first ? "" : ":") + part
                    if column + chunk.count > 78, !first {
                        out += "\r\n\t"
                        column = 1
                    }
                    out += chunk
                    column += chunk.count
                    first = false
                }
                continue
            }
            out += piece
            column += piece.count
        }
        return out
    }

    /// Base64 in lines of 72, continued with CRLF TAB (FWS inside b= is ignored, §3.5).
    static func wrap(_ base64: String) -> String {
        var lines: [Substring] = []
        var rest = Substring(base64)
        // The first line already holds "\tb=".
        lines.append(rest.prefix(70))
        rest = rest.dropFirst(70)
        while !rest.isEmpty {
            lines.append(rest.prefix(72))
            rest = rest.dropFirst(72)
        }
        return lines.joined(separator: "\r\n\t")
    }
}
