/// One header field as it stands in the message (RFC 5322 §2.2): its raw octets from
/// the name to the end of its last line, folding kept, without the final CRLF.
///
/// Raw octets, not a `String`, so that 8-bit fields survive byte for byte and a
/// signature over them (DKIM `simple`) sees what is sent.
public struct HeaderField: Sendable, Hashable {
    /// `Name: value` with any `CRLF WSP` folding, without the final CRLF.
    public let raw: [UInt8]
    /// The name before the colon, as written (empty for a line without a colon,
    /// which is kept as it is but cannot be addressed by a change).
    public let name: String

    /// A field from its raw octets (as the relay hands them to stages).
    public init(raw: [UInt8]) {
        self.raw = raw
        if let colon = raw.firstIndex(of: UInt8(ascii: ":")) {
            self.name = String(decoding: raw[..<colon], as: UTF8.self).trimmingWhitespace()
        } else {
            self.name = ""
        }
    }

    /// A new field `Name: value`. `value` may contain folding (`CRLF` followed by a
    /// space or tab); see ``MessageChange`` for what is refused.
    public init(name: String, value: String) {
        self.init(raw: Array(name.utf8) + Array(": ".utf8) + Array(value.utf8))
    }

    /// The value after the colon, unfolded (RFC 5322 §2.2.3) and trimmed.
    public var value: String {
        guard let colon = raw.firstIndex(of: UInt8(ascii: ":")) else { return "" }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count - colon)
        for b in raw[(colon + 1)...] where b != 13 && b != 10 { out.append(b) }
        return String(decoding: out, as: UTF8.self).trimmingWhitespace()
    }

    /// The value after the colon exactly as written, folding included.
    public var rawValue: ArraySlice<UInt8> {
        guard let colon = raw.firstIndex(of: UInt8(ascii: ":")) else { return raw[raw.endIndex...] }
        return raw[(colon + 1)...]
    }

    /// Whether this field is called `other` (ASCII case-insensitive, RFC 5322 §1.2.2).
    public func isNamed(_ other: String) -> Bool {
        name.utf8.count == other.utf8.count && zip(name.utf8, other.utf8).allSatisfy { Self.lower($0) == Self.lower($1) }
    }

    static func lower(_ b: UInt8) -> UInt8 { (65...90).contains(b) ? b | 0x20 : b }
}

extension String {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })!
        return String(scalars[first...last])
    }
}
