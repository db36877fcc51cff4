/// IPv4 and IPv6 addresses in text form, parsed without any library, for the relay
/// and every plugin alike (client networks in listeners, department policies and
/// stage settings are one grammar).
public enum IPAddressParser {
    /// 4 bytes for IPv4, 16 for IPv6, `nil` when `text` is neither.
    ///
    /// Accepts what a relay may report as a client address: brackets (`[::1]`), an
    /// `IPv6:` prefix, a zone (`fe80::1%eth0`). IPv4-mapped IPv6 addresses
    /// (`::ffff:192.0.2.1`) come back as IPv4, so they match IPv4 networks.
    public static func parseClient(_ text: String) -> [UInt8]? {
        var s = Substring(text.trimmingSpaces)
        if s.hasPrefix("["), s.hasSuffix("]") { s = s.dropFirst().dropLast() }
        if s.lowercased().hasPrefix("ipv6:") { s = s.dropFirst(5) }
        if let percent = s.firstIndex(of: "%") { s = s[..<percent] }
        guard let bytes = parse(s) else { return nil }
        return unmapped(bytes)
    }

    /// Strict parse of a bare address.
    public static func parse(_ s: Substring) -> [UInt8]? {
        s.contains(":") ? parseV6(s) : parseV4(s)
    }

    /// `::ffff:a.b.c.d` → `a.b.c.d`; everything else unchanged.
    public static func unmapped(_ bytes: [UInt8]) -> [UInt8] {
        if bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            return Array(bytes[12..<16])
        }
        return bytes
    }

    /// Dotted quad, four decimal parts 0…255, no leading zeros (`010` is ambiguous).
    static func parseV4(_ s: Substring) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                part == "0" || !part.hasPrefix("0"), let value = Int(part), value <= 255
            else { return nil }
            bytes.append(UInt8(value))
        }
        return bytes
    }

    /// RFC 4291 §2.2 text forms: eight groups, `::` once, an IPv4 tail.
    static func parseV6(_ s: Substring) -> [UInt8]? {
        let halves = s.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ text: Substring, allowV4Tail: Bool) -> [UInt16]? {
            if text.isEmpty { return [] }
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            var result: [UInt16] = []
            for (index, part) in parts.enumerated() {
                if index == parts.count - 1, allowV4Tail, part.contains(".") {
                    guard let v4 = parseV4(part) else { return nil }
                    result.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                    result.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
                    continue
                }
                guard !part.isEmpty, part.count <= 4, let value = UInt16(part, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        var all: [UInt16]
        if halves.count == 2 {
            guard let head = groups(halves[0], allowV4Tail: false), let tail = groups(halves[1], allowV4Tail: true),
                head.count + tail.count <= 7
            else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let only = groups(halves[0], allowV4Tail: true), only.count == 8 else { return nil }
            all = only
        }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }
}

extension Substring {
    /// `split` on a multi-character separator, keeping empty pieces.
    fileprivate func components(separatedBy separator: String) -> [Substring] {
        var pieces: [Substring] = []
        var rest = self[...]
        while let range = rest.firstRange(of: separator) {
            pieces.append(rest[..<range.lowerBound])
            rest = rest[range.upperBound...]
        }
        pieces.append(rest)
        return pieces
    }
}

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`); a bare address is a
/// network of one (`/32`, `/128`). Host bits after the prefix are ignored.
public struct CIDRNetwork: Sendable, Hashable, CustomStringConvertible {
    let bytes: [UInt8]
    let prefix: Int
    /// As written, for reasons and logs.
    public let text: String

    /// Parses `text`, or explains why it is not a network.
    public static func parse(_ raw: String) -> Result<CIDRNetwork, IPNetworkError> {
        let text = raw.trimmingSpaces
        var addressPart = Substring(text)
        var prefixPart: Substring?
        if let slash = text.firstIndex(of: "/") {
            addressPart = text[..<slash]
            prefixPart = text[text.index(after: slash)...]
        }
        guard var bytes = IPAddressParser.parse(addressPart) else {
            return .failure(IPNetworkError("'\(text)' is not a network (expected an IPv4 or IPv6 address with an optional /prefix)"))
        }
        let width = bytes.count * 8
        var prefix = width
        if let prefixPart {
            guard !prefixPart.isEmpty, prefixPart.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(prefixPart),
                value <= width
            else {
                return .failure(IPNetworkError("'\(text)': the prefix length must be 0…\(width)"))
            }
            prefix = value
        }
        // ::ffff:0:0/96 and longer describe IPv4 addresses; clients are compared unmapped.
        let unmapped = IPAddressParser.unmapped(bytes)
        if unmapped.count == 4, bytes.count == 16 {
            guard prefix >= 96 else {
                return .failure(IPNetworkError("'\(text)': an IPv4-mapped network needs a prefix of at least 96"))
            }
            bytes = unmapped
            prefix -= 96
        }
        return .success(CIDRNetwork(bytes: Self.masked(bytes, prefix), prefix: prefix, text: text))
    }

    init(bytes: [UInt8], prefix: Int, text: String) {
        self.bytes = bytes
        self.prefix = prefix
        self.text = text
    }

    static func masked(_ bytes: [UInt8], _ prefix: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bitsHere = min(max(prefix - index * 8, 0), 8)
            let mask: UInt8 = bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - bitsHere))
            return byte & mask
        }
    }

    /// Whether the address (4 or 16 bytes) is inside; IPv4-mapped IPv6 addresses are
    /// compared as IPv4.
    public func contains(_ address: [UInt8]) -> Bool {
        let address = IPAddressParser.unmapped(address)
        return address.count == bytes.count && Self.masked(address, prefix) == bytes
    }

    /// Whether the address in text form is inside; unparsable text never is.
    public func contains(address text: String) -> Bool {
        guard let address = IPAddressParser.parseClient(text) else { return false }
        return contains(address)
    }

    public var description: String { text }
}

/// Why a text is not a network.
public struct IPNetworkError: Error, Sendable, Hashable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
