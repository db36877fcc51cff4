#if canImport(Glibc)
import Glibc
#endif

/// A TCP port on 127.0.0.1 that was free a moment ago: bound to port 0, read
/// back, closed. Another process can take it before you bind it; servers
/// started on it should retry with a new port when the bind fails. Traps if
/// the kernel refuses a socket or a port (out of file descriptors or ports):
/// no test can go on then.
public func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { fatalError("freePort: \(TestSupportError.system("socket"))") }
    defer { close(fd) }
    var address = SocketAddress.loopback(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    guard bound else { fatalError("freePort: \(TestSupportError.system("bind 127.0.0.1:0"))") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Polls until a TCP connection to `host`:`port` succeeds (the connection is
/// closed at once). Returns `false` after `timeout` seconds.
public func waitForPort(_ port: Int, host: String = "127.0.0.1", timeout: Double) -> Bool {
    waitUntil(timeout: timeout, interval: 0.02) { canConnect(host: host, port: port) }
}

/// The async form of ``waitForPort(_:host:timeout:)``: sleeps between attempts
/// without holding a thread.
public func waitForPort(_ port: Int, host: String = "127.0.0.1", timeout: Double) async -> Bool {
    await waitUntil(timeout: timeout, interval: 0.02) { canConnect(host: host, port: port) }
}

/// Whether a TCP connection to `host`:`port` succeeds right now (IPv4 literal or "localhost").
public func canConnect(host: String = "127.0.0.1", port: Int) -> Bool {
    guard let fd = try? SocketAddress.connectedSocket(host: host, port: port, timeout: 1) else { return false }
    close(fd)
    return true
}

/// Whether some socket listens on TCP `port` on 127.0.0.1 or the IPv4/IPv6
/// wildcard, read from `/proc/net/tcp{,6}`: a readiness check that, unlike
/// connecting, opens no session on the server.
public func isListening(port: Int) -> Bool {
    let hexPort = String(port, radix: 16, uppercase: true)
    let suffix = ":" + String(repeating: "0", count: max(0, 4 - hexPort.count)) + hexPort
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        guard let text = TestFiles.readString(table) else { continue }
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 3, fields[3] == "0A", fields[1].hasSuffix(suffix) else { continue }
            let address = fields[1].dropLast(suffix.count)
            if address == "0100007F" || address.allSatisfy({ $0 == "0" }) { return true }
        }
    }
    return false
}
