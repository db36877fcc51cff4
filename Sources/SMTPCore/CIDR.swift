import NIOCore

/// An IP network in CIDR notation (`10.20.0.0/16`, `::1/128`); a bare address means
/// a single host.
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    public let network: [UInt8]
    public let prefixLength: Int
    public let description: String

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let first = parts.first, let address = CIDR.parseAddress(String(first)) else { return nil }
        let maxBits = address.count * 8
        var length = maxBits
        if parts.count == 2 {
            guard let n = Int(parts[1]), n >= 0, n <= maxBits else { return nil }
            length = n
        }
        self.network = CIDR.mask(address, length)
        self.prefixLength = length
        self.description = text
    }

    /// Whether `address` (IPv4 or IPv6 bytes) lies in this network. IPv4-mapped IPv6
    /// addresses match IPv4 networks.
    public func contains(_ address: [UInt8]) -> Bool {
        var bytes = address
        if bytes.count == 16, network.count == 4, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            bytes = Array(bytes[12..<16])
        }
        guard bytes.count == network.count else { return false }
        return CIDR.mask(bytes, prefixLength) == network
    }

    public func contains(_ text: String) -> Bool {
        guard let bytes = CIDR.parseAddress(text) else { return false }
        return contains(bytes)
    }

    public func contains(_ address: SocketAddress) -> Bool {
        guard let bytes = CIDR.bytes(of: address) else { return false }
        return contains(bytes)
    }

    static func mask(_ address: [UInt8], _ length: Int) -> [UInt8] {
        var out = address
        for i in 0..<out.count {
            let bitsHere = max(0, min(8, length - i * 8))
            out[i] &= bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - bitsHere))
        }
        return out
    }

    /// The address's bytes, via the socket address's own parser.
    public static func parseAddress(_ text: String) -> [UInt8]? {
        guard let address = try? SocketAddress(ipAddress: text, port: 0) else { return nil }
        return bytes(of: address)
    }

    public static func bytes(of address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let v4):
            var a = v4.address.sin_addr
            return withUnsafeBytes(of: &a) { Array($0) }
        case .v6(let v6):
            var a = v6.address.sin6_addr
            return withUnsafeBytes(of: &a) { Array($0) }
        default:
            return nil
        }
    }
}
