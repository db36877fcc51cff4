#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The client's name for the `Received:` header and the stages (RELIABILITY C21):
/// the PTR name of its address, kept only if that name resolves back to the address
/// (forward-confirmed, as Postfix does; otherwise the client is "unknown").
///
/// The resolver's calls block, so they run on a thread pool of their own; the session
/// waits at most `timeout` and goes on without a name if the answer is late (the
/// lookup then finishes unobserved, on its thread).
public struct ReverseDNS: Sendable {
    public let timeout: TimeAmount
    private let pool: NIOThreadPool
    private let lookup: @Sendable (String) -> String?

    /// `lookup` is the blocking resolution; tests put a slow one in.
    public init(timeout: TimeAmount, pool: NIOThreadPool, lookup: @escaping @Sendable (String) -> String? = ReverseDNS.forwardConfirmedName) {
        self.timeout = timeout
        self.pool = pool
        self.lookup = lookup
    }

    /// The client's confirmed name, or nil (none, not confirmed, or not in time).
    /// The deadline is a timer on `eventLoop` (the session's), not a task, so a busy
    /// task pool cannot stretch it.
    public func name(for address: String, eventLoop: any EventLoop) async -> String? {
        let lookup = self.lookup
        let pool = self.pool
        let timeout = self.timeout
        return await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
            let answered = NIOLockedValueBox(false)
            @Sendable func answer(_ name: String?) {
                let first = answered.withLockedValue { done -> Bool in
                    defer { done = true }
                    return !done
                }
                if first { continuation.resume(returning: name) }
            }
            let deadline = eventLoop.scheduleTask(in: timeout) { answer(nil) }
            pool.submit { state in
                answer(state == .active ? lookup(address) : nil)
                deadline.cancel()
            }
        }
    }

    /// `getnameinfo` (PTR), then `getaddrinfo` of that name must give the address back.
    @Sendable public static func forwardConfirmedName(_ address: String) -> String? {
        guard let socketAddress = try? SocketAddress(ipAddress: address, port: 0) else { return nil }
        var host = [CChar](repeating: 0, count: 1025)
        let found = socketAddress.withSockAddr { pointer, length in
            getnameinfo(pointer, socklen_t(length), &host, socklen_t(host.count), nil, 0, NI_NAMEREQD)
        }
        guard found == 0 else { return nil }
        let name = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var results: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &results) == 0 else { return nil }
        defer { freeaddrinfo(results) }
        var next = results
        while let entry = next {
            if let sockaddr = entry.pointee.ai_addr,
                let candidate = try? SocketAddress(sockaddr, length: Int(entry.pointee.ai_addrlen)),
                candidate.ipAddress == socketAddress.ipAddress
            {
                return name
            }
            next = entry.pointee.ai_next
        }
        return nil
    }
}

extension SocketAddress {
    fileprivate init(_ pointer: UnsafeMutablePointer<sockaddr>, length: Int) throws {
        switch Int32(pointer.pointee.sa_family) {
        case AF_INET:
            self = pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SocketAddress($0.pointee, host: "") }
        case AF_INET6:
            self = pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { SocketAddress($0.pointee, host: "") }
        default:
            throw SocketAddressError.unsupported
        }
    }
}
