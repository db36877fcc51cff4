import NIOCore

extension SocketAddress {
    /// The IP address's bytes (4 for IPv4, 16 for IPv6); `nil` for a Unix socket.
    public var ipBytes: [UInt8]? {
        switch self {
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
