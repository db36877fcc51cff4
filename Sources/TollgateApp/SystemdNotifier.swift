#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The sd_notify protocol, by hand: when systemd starts `tollgate serve` with
/// `Type=notify` it sets `NOTIFY_SOCKET` to a datagram Unix socket, and each state
/// change is one datagram of `KEY=VALUE` lines (`READY=1`, `RELOADING=1`,
/// `STOPPING=1`, `WATCHDOG=1`). See sd_notify(3) and systemd.service(5).
///
/// Without `NOTIFY_SOCKET` there is no notifier and nothing is sent. A datagram that
/// cannot be sent is dropped: systemd not listening must never stop the relay.
public struct SystemdNotifier: Sendable {
    /// The socket's address: a path, or an abstract name (written `@name`).
    public let socketPath: String
    /// How often systemd wants `WATCHDOG=1` (`WATCHDOG_USEC`), if at all.
    public let watchdogInterval: Duration?

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment`;
    /// nil without a usable `NOTIFY_SOCKET`.
    public init?(environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let socket = environment["NOTIFY_SOCKET"], socket.hasPrefix("/") || socket.hasPrefix("@"),
            socket.utf8.count < Self.maxPathLength
        else { return nil }
        socketPath = socket
        // WATCHDOG_PID, when set, names the process the watchdog is for (sd_watchdog_enabled(3)).
        let forUs = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        if forUs, let usec = environment["WATCHDOG_USEC"].flatMap(UInt64.init), usec > 0 {
            watchdogInterval = .microseconds(Int64(usec))
        } else {
            watchdogInterval = nil
        }
    }

    /// `sun_path` holds 108 bytes on Linux, its terminating NUL included.
    static let maxPathLength = 108

    /// Sends one datagram of state lines, e.g. `["READY=1", "STATUS=accepting mail"]`.
    /// Returns whether the socket took it.
    @discardableResult
    public func notify(_ lines: [String]) -> Bool {
        let message = lines.joined(separator: "\n")
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socketPath.utf8)
        // An abstract socket's name starts with a NUL instead of the `@`.
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path)
        }
        // The length counts the name only: an abstract name is not NUL-terminated.
        let length = socklen_t(MemoryLayout.offset(of: \sockaddr_un.sun_path)! + path.count)
        let sent = message.utf8CString.withUnsafeBufferPointer { bytes in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                    sendto(fd, bytes.baseAddress, bytes.count - 1, Int32(MSG_NOSIGNAL), socketAddress, length)
                }
            }
        }
        return sent == message.utf8.count
    }

    public func ready(status: String) { notify(["READY=1", "STATUS=\(Self.clean(status))"]) }

    /// `RELOADING=1` with the time of the reload on the monotonic clock, as
    /// `Type=notify-reload` requires and `Type=notify` accepts.
    public func reloading() { notify(["RELOADING=1", "MONOTONIC_USEC=\(Self.monotonicMicroseconds())", "STATUS=reloading the configuration"]) }

    public func stopping(status: String) { notify(["STOPPING=1", "STATUS=\(Self.clean(status))"]) }

    public func watchdog() { notify(["WATCHDOG=1"]) }

    /// CLOCK_MONOTONIC in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
    public static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }

    /// A status is one line.
    static func clean(_ status: String) -> String {
        String(status.map { $0.isNewline ? " " : $0 })
    }
}
