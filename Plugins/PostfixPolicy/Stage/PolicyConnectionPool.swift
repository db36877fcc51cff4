import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a request to the policy server failed. Any of them makes the stage throw,
/// and the relay answers with the stage's `on_error`.
public enum PolicyServerError: Error, Sendable, Hashable, CustomStringConvertible {
    case connect(String)
    case timeout(String)
    case broken(String)
    case garbage(String)

    public var description: String {
        switch self {
        case .connect(let s): return "cannot connect to the policy server: \(s)"
        case .timeout(let s): return "the policy server did not answer in time: \(s)"
        case .broken(let s): return "the connection to the policy server broke: \(s)"
        case .garbage(let s): return "the policy server answered garbage: \(s)"
        }
    }
}

/// Open connections to one policy server, reused one request at a time each
/// (postfwd and policyd keep a connection open), at most `size` of them. The blocking
/// socket calls run on a Dispatch queue, never on the event loop or a Swift
/// concurrency thread. A connection found broken is reopened once before failing.
public final class PolicyConnectionPool: Sendable {
    public let address: PolicyServerAddress
    let timeout: Double
    private let slots: DispatchSemaphore
    private let queue = DispatchQueue(label: "tollgate.postfix-policy", attributes: .concurrent)
    private let idle = Mutex<(fds: [Int32], closed: Bool, opened: Int)>(([], false, 0))

    public init(address: PolicyServerAddress, size: Int, timeout: Double) {
        self.address = address
        self.timeout = timeout
        self.slots = DispatchSemaphore(value: size)
    }

    /// How many connections were opened so far (for tests of reuse).
    public var connectionsOpened: Int { idle.withLock { $0.opened } }

    /// Sends one request and returns the answer's lines (without the ending empty line).
    public func send(_ request: [UInt8]) async throws -> [String] {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[String], any Error>) in
            queue.async {
                continuation.resume(with: Result { try self.sendBlocking(request) })
            }
        }
    }

    public func close() {
        let fds = idle.withLock { state -> [Int32] in
            state.closed = true
            defer { state.fds = [] }
            return state.fds
        }
        for fd in fds { _ = Glibc.close(fd) }
    }

    private func sendBlocking(_ request: [UInt8]) throws -> [String] {
        let deadline = Self.monotonic() + timeout
        // Waiting for a free connection counts against the request's time.
        guard slots.wait(timeout: .now() + .milliseconds(Int(timeout * 1000))) == .success else {
            throw PolicyServerError.timeout("no free connection to \(address) within \(timeout)s")
        }
        defer { slots.signal() }
        var reused = true
        var fd = idle.withLock { $0.fds.popLast() } ?? -1
        if fd < 0 {
            reused = false
            fd = try open(deadline: deadline)
        }
        do {
            let answer = try exchange(fd, request, deadline: deadline)
            release(fd)
            return answer
        } catch PolicyServerError.broken(let why) where reused {
            // The server closed a kept connection (idle timeout, restart): reopen once.
            _ = Glibc.close(fd)
            _ = why
            let fresh = try open(deadline: deadline)
            do {
                let answer = try exchange(fresh, request, deadline: deadline)
                release(fresh)
                return answer
            } catch {
                _ = Glibc.close(fresh)
                throw error
            }
        } catch {
            _ = Glibc.close(fd)
            throw error
        }
    }

    private func release(_ fd: Int32) {
        let keep = idle.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.fds.append(fd)
            return true
        }
        if !keep { _ = Glibc.close(fd) }
    }

    static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    private static func errorText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    /// Waits until `fd` is ready for `events`, or throws a timeout at `deadline`.
    private func wait(_ fd: Int32, _ events: Int16, deadline: Double, doing: String) throws {
        while true {
            let left = deadline - Self.monotonic()
            guard left > 0 else { throw PolicyServerError.timeout("\(doing) \(address) after \(timeout)s") }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&p, 1, Int32(max(1, (left * 1000).rounded(.up))))
            if rc > 0 { return }
            if rc < 0 && errno != EINTR { throw PolicyServerError.broken("poll: \(Self.errorText())") }
        }
    }

    private func open(deadline: Double) throws -> Int32 {
        switch address {
        case .unix(let path):
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw PolicyServerError.connect("socket: \(Self.errorText())") }
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                for (i, byte) in path.utf8.enumerated() where i < raw.count - 1 { raw[i] = byte }
            }
            do {
                try withUnsafePointer(to: &addr) { pointer in
                    try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        try connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size), deadline: deadline)
                    }
                }
            } catch {
                _ = Glibc.close(fd)
                throw error
            }
            idle.withLock { $0.opened += 1 }
            return fd
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_flags = AI_ADDRCONFIG
            var list: UnsafeMutablePointer<addrinfo>?
            let rc = getaddrinfo(host, "\(port)", &hints, &list)
            guard rc == 0, let list else { throw PolicyServerError.connect("\(address): \(String(cString: gai_strerror(rc)))") }
            defer { freeaddrinfo(list) }
            var lastError = "no address"
            var entry: UnsafeMutablePointer<addrinfo>? = list
            while let ai = entry {
                entry = ai.pointee.ai_next
                let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
                guard fd >= 0 else { lastError = Self.errorText(); continue }
                do {
                    try connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen, deadline: deadline)
                    var one: Int32 = 1
                    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    idle.withLock { $0.opened += 1 }
                    return fd
                } catch PolicyServerError.timeout(let why) {
                    _ = Glibc.close(fd)
                    throw PolicyServerError.timeout(why)
                } catch {
                    _ = Glibc.close(fd)
                    lastError = "\(error)"
                }
            }
            throw PolicyServerError.connect("\(address): \(lastError)")
        }
    }

    private func connect(_ fd: Int32, _ addr: UnsafePointer<sockaddr>, _ length: socklen_t, deadline: Double) throws {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        if Glibc.connect(fd, addr, length) == 0 { return }
        guard errno == EINPROGRESS else { throw PolicyServerError.connect("\(address): \(Self.errorText())") }
        try wait(fd, Int16(POLLOUT), deadline: deadline, doing: "connecting to")
        var soError: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &size)
        guard soError == 0 else { throw PolicyServerError.connect("\(address): \(Self.errorText(soError))") }
    }

    /// Writes the request and reads the answer up to its empty line.
    private func exchange(_ fd: Int32, _ request: [UInt8], deadline: Double) throws -> [String] {
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                try wait(fd, Int16(POLLOUT), deadline: deadline, doing: "writing to")
                continue
            }
            throw PolicyServerError.broken("writing to \(address): \(Self.errorText())")
        }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            try wait(fd, Int16(POLLIN), deadline: deadline, doing: "waiting for")
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                throw PolicyServerError.broken("reading from \(address): \(Self.errorText())")
            }
            if n == 0 {
                if answer.isEmpty { throw PolicyServerError.broken("\(address) closed the connection") }
                throw PolicyServerError.garbage("\(address) closed the connection in the middle of an answer")
            }
            for byte in chunk[0..<n] where byte != 13 { answer.append(byte) }
            if answer.first == 10 { return [] }
            if let end = answer.indices.dropLast().first(where: { answer[$0] == 10 && answer[$0 + 1] == 10 }) {
                return String(decoding: answer[..<end], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            }
            if answer.count > 65536 { throw PolicyServerError.garbage("an answer of more than 64 KiB without an empty line") }
        }
    }
}

