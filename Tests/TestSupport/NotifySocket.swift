#if canImport(Glibc)
import Glibc
#endif

/// The test's side of sd_notify: a datagram Unix socket bound at `path`, as systemd
/// binds the one it names in `NOTIFY_SOCKET`. Each datagram is one notification.
public final class NotifySocket: @unchecked Sendable {
    public let path: String
    private let fd: Int32

    public init(path: String) throws {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError.system("socket") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw TestSupportError(.system, "socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw TestSupportError.system("bind \(path)", errno: code)
        }
    }

    /// The next datagram, or nil after `timeout` seconds.
    public func receive(timeout: Double) -> String? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[..<n], as: UTF8.self)
    }

    /// Datagrams until one contains the line `line` (returned, with those before it),
    /// or nil if none does within `timeout` seconds.
    public func receive(until line: String, timeout: Double) -> (match: String, before: [String])? {
        let deadline = MonotonicTime.now + timeout
        var before: [String] = []
        while true {
            let left = deadline - MonotonicTime.now
            guard left > 0, let message = receive(timeout: left) else { return nil }
            if message.split(separator: "\n").contains(Substring(line)) { return (message, before) }
            before.append(message)
        }
    }

    deinit {
        close(fd)
        unlink(path)
    }
}
