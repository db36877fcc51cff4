import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A small blocking SMTP client over a plain TCP socket, for driving the relay
/// in tests: every read waits at most `readTimeout` seconds (or the timeout
/// given to the call) and then throws a ``TestSupportError/Kind/timedOut`` error.
///
/// Blocking: from async tests, wrap calls in ``Blocking/run(_:)``. TLS is not
/// supported; use ``Swaks`` or `openssl s_client` through ``ChildProcess``.
public final class SMTPTestClient: Sendable {
    /// The default read timeout in seconds.
    public let readTimeout: Double

    private struct State {
        var fd: Int32 = -1
        var buffer: [UInt8] = []
    }
    private let state = Mutex(State())

    public init(readTimeout: Double = 10) {
        self.readTimeout = readTimeout
    }

    deinit { close() }

    /// A client connected to `host`:`port` (the greeting is not read yet).
    public static func connect(host: String = "127.0.0.1", port: Int, readTimeout: Double = 10, source: String? = nil) throws -> SMTPTestClient {
        let client = SMTPTestClient(readTimeout: readTimeout)
        try client.connect(host: host, port: port, source: source)
        return client
    }

    /// Connects to `host` (an IPv4 literal or "localhost"):`port`, from `source` if
    /// given (e.g. `127.0.0.2`). Does not read the greeting.
    public func connect(host: String = "127.0.0.1", port: Int, source: String? = nil) throws {
        let fd = try SocketAddress.connectedSocket(host: host, port: port, timeout: readTimeout, source: source)
        state.withLock { current in
            if current.fd >= 0 { Glibc.close(current.fd) }
            current = State(fd: fd)
        }
    }

    /// Whether the socket is open (the peer may still have closed its side).
    public var isConnected: Bool { state.withLock { $0.fd >= 0 } }

    /// Reads one reply, following "250-" continuation lines.
    public func readReply(timeout: Double? = nil) throws -> SMTPTestReply {
        let deadline = MonotonicTime.now + (timeout ?? readTimeout)
        return try state.withLock { current in
            var code: Int?
            var lines: [String] = []
            while true {
                let line = try Self.readLine(&current, deadline: deadline)
                let text = String(decoding: line, as: UTF8.self)
                let digits = text.prefix(3)
                guard digits.count == 3, digits.allSatisfy(\.isNumber), let lineCode = Int(digits),
                      text.count == 3 || [" ", "-"].contains(text[text.index(text.startIndex, offsetBy: 3)])
                else { throw TestSupportError(.protocolViolation, "not an SMTP reply line: \(text.debugDescription)") }
                if let code, code != lineCode {
                    throw TestSupportError(.protocolViolation, "reply code changed from \(code) to \(lineCode) in a multiline reply")
                }
                code = lineCode
                lines.append(text.count > 4 ? String(text.dropFirst(4)) : "")
                if text.count == 3 || text[text.index(text.startIndex, offsetBy: 3)] == " " {
                    return SMTPTestReply(code: lineCode, lines: lines)
                }
            }
        }
    }

    /// Sends `line` followed by CRLF.
    public func send(_ line: String) throws {
        try sendRaw(Array(line.utf8) + [0x0D, 0x0A])
    }

    /// Sends `bytes` exactly as given.
    public func sendRaw(_ bytes: [UInt8]) throws {
        let deadline = MonotonicTime.now + readTimeout
        try state.withLock { current in
            guard current.fd >= 0 else { throw TestSupportError(.connectionClosed, "not connected") }
            var offset = 0
            while offset < bytes.count {
                let sent = bytes.withUnsafeBytes { Glibc.send(current.fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                if sent > 0 {
                    offset += sent
                } else if sent < 0 && (errno == EAGAIN || errno == EINTR) {
                    try Self.poll(current.fd, events: POLLOUT, deadline: deadline, what: "send")
                } else if sent < 0 && (errno == EPIPE || errno == ECONNRESET) {
                    throw TestSupportError(.connectionClosed, "the peer closed the connection while we were sending")
                } else {
                    throw TestSupportError.system("send")
                }
            }
        }
    }

    /// Sends `line` and reads the reply.
    public func command(_ line: String, timeout: Double? = nil) throws -> SMTPTestReply {
        try send(line)
        return try readReply(timeout: timeout)
    }

    /// Sends `line` and reads the reply; throws ``TestSupportError/Kind/unexpectedReply``
    /// unless its code is `expected`.
    @discardableResult
    public func command(_ line: String, expect expected: Int, timeout: Double? = nil) throws -> SMTPTestReply {
        let reply = try command(line, timeout: timeout)
        guard reply.code == expected else {
            throw TestSupportError(.unexpectedReply, "\(line.prefix(80)) → expected \(expected)", reply: reply)
        }
        return reply
    }

    /// Whether the peer has closed the connection (or sends nothing) within `timeout` seconds:
    /// returns `true` on end of file or reset, `false` if bytes arrive or the time runs out.
    public func peerCloses(within timeout: Double) -> Bool {
        let deadline = MonotonicTime.now + timeout
        return state.withLock { current in
            guard current.fd >= 0 else { return true }
            if !current.buffer.isEmpty { return false }
            do {
                try Self.poll(current.fd, events: POLLIN, deadline: deadline, what: "read")
            } catch {
                return false
            }
            var byte: UInt8 = 0
            let count = recv(current.fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
            return count == 0 || (count < 0 && errno == ECONNRESET)
        }
    }

    /// Closes the socket with a TCP reset (`SO_LINGER` 0): what a crashed or killed
    /// client looks like to the server.
    public func reset() {
        state.withLock { current in
            guard current.fd >= 0 else { return }
            var option = linger(l_onoff: 1, l_linger: 0)
            _ = setsockopt(current.fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
            Glibc.close(current.fd)
            current = State()
        }
    }

    /// Closes the socket. Idempotent.
    public func close() {
        state.withLock { current in
            if current.fd >= 0 { Glibc.close(current.fd) }
            current = State()
        }
    }

    // MARK: - Socket plumbing

    private static func readLine(_ current: inout State, deadline: Double) throws -> [UInt8] {
        while true {
            if let newline = current.buffer.firstIndex(of: 0x0A), newline > 0, current.buffer[newline - 1] == 0x0D {
                let line = Array(current.buffer[..<(newline - 1)])
                current.buffer.removeSubrange(...newline)
                return line
            }
            guard current.fd >= 0 else { throw TestSupportError(.connectionClosed, "not connected") }
            try poll(current.fd, events: POLLIN, deadline: deadline, what: "reply")
            var chunk = [UInt8](repeating: 0, count: 16384)
            let count = chunk.withUnsafeMutableBytes { recv(current.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count > 0 {
                current.buffer += chunk[0..<count]
            } else if count == 0 || errno == ECONNRESET {
                let pending = String(decoding: current.buffer, as: UTF8.self)
                throw TestSupportError(.connectionClosed, "the peer closed the connection" + (pending.isEmpty ? "" : " after \(pending.debugDescription)"))
            } else if errno != EAGAIN && errno != EINTR {
                throw TestSupportError.system("recv")
            }
        }
    }

    private static func poll(_ fd: Int32, events: Int32, deadline: Double, what: String) throws {
        while true {
            let left = deadline - MonotonicTime.now
            guard left > 0 else { throw TestSupportError(.timedOut, "no \(what) before the deadline") }
            var poller = pollfd(fd: fd, events: Int16(events), revents: 0)
            let ready = Glibc.poll(&poller, 1, Int32(min(left * 1000 + 1, 60_000)))
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw TestSupportError.system("poll") }
        }
    }
}
