#if canImport(Glibc)
import Glibc
#endif

/// IPv4 socket plumbing shared by the port helpers and ``SMTPTestClient``.
enum SocketAddress {
    /// `sockaddr_in` for 127.0.0.1:`port`.
    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    /// `sockaddr_in` for an IPv4 literal (or "localhost") and `port`.
    static func ipv4(host: String, port: Int) throws -> sockaddr_in {
        var address = loopback(port: port)
        let literal = host == "localhost" ? "127.0.0.1" : host
        guard inet_pton(AF_INET, literal, &address.sin_addr) == 1 else {
            throw TestSupportError(.notFound, "not an IPv4 address: \(host)")
        }
        return address
    }

    /// A blocking, close-on-exec TCP socket connected to `host`:`port`, or an
    /// error if the connection is refused or takes longer than `timeout` seconds.
    /// With `source`, the socket is bound to that local address first (another
    /// loopback address, for tests of what a relay decides by client network).
    static func connectedSocket(host: String, port: Int, timeout: Double, source: String? = nil) throws -> Int32 {
        var address = try ipv4(host: host, port: port)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError.system("socket") }
        if let source {
            var local = try ipv4(host: source, port: 0)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else {
                let error = TestSupportError.system("bind \(source)")
                close(fd)
                throw error
            }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if result != 0 {
            guard errno == EINPROGRESS else {
                let error = TestSupportError.system("connect \(host):\(port)")
                close(fd)
                throw error
            }
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&poller, 1, Int32(max(0, timeout) * 1000))
            var socketError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &socketError, &length)
            guard ready == 1, socketError == 0 else {
                close(fd)
                if ready == 0 { throw TestSupportError(.timedOut, "connect \(host):\(port) took over \(timeout) s") }
                throw TestSupportError.system("connect \(host):\(port)", errno: socketError == 0 ? errno : socketError)
            }
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        return fd
    }
}
