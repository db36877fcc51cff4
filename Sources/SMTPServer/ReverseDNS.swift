#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The client's name for the `Received:` header and the stages (RELIABILITY C21):
/// the PTR name of its address, kept only if that name resolves back to the address
/// (forward-confirmed, as Postfix does; otherwise the client is "unknown"). The PTR
/// name itself is kept beside it, as Postfix's `reverse_client_name`.
///
/// The resolver's calls block, so they run on a thread pool of their own; the session
/// waits at most `timeout` and goes on without a name if the answer is late (the
/// lookup then finishes unobserved, on its thread).
public struct ReverseDNS: Sendable {
    /// What the resolver said of an address.
    public struct Answer: Sendable, Hashable {
        /// The PTR name, confirmed or not; nil: no PTR record.
        public var ptr: String?
        /// The PTR name if it resolves back to the address; nil otherwise.
        public var name: String?

        public init(ptr: String? = nil, name: String? = nil) {
            self.ptr = ptr
            self.name = name
        }
    }

    public let timeout: TimeAmount
    private let pool: NIOThreadPool
    private let lookup: @Sendable (String) -> Answer

    /// `lookup` is the blocking resolution; tests put a slow one in.
    public init(timeout: TimeAmount, pool: NIOThreadPool, lookup: @escaping @Sendable (String) -> Answer = ReverseDNS.resolve) {
        self.timeout = timeout
        self.pool = pool
        self.lookup = lookup
    }

    /// The client's names; empty if none, or not in time. The deadline is a timer on
    /// `eventLoop` (the session's), not a task, so a busy task pool cannot stretch it.
    public func names(for address: String, eventLoop: any EventLoop) async -> Answer {
        let lookup = self.lookup
        let pool = self.pool
        let timeout = self.timeout
        return await withCheckedContinuation { (continuation: CheckedContinuation<Answer, Never>) in
            let answered = NIOLockedValueBox(false)
            @Sendable func answer(_ names: Answer) {
                let first = answered.withLockedValue { done -> Bool in
                    defer { done = true }
                    return !done
                }
                if first { continuation.resume(returning: names) }
            }
            let deadline = eventLoop.scheduleTask(in: timeout) { answer(Answer()) }
            pool.submit { state in
                answer(state == .active ? lookup(address) : Answer())
                deadline.cancel()
            }
        }
    }

    /// The forward-confirmed name alone (``resolve(_:)``'s `name`).
    @Sendable public static func forwardConfirmedName(_ address: String) -> String? {
        resolve(address).name
    }

    /// `getnameinfo` (PTR), then `getaddrinfo` of that name must give the address back.
    @Sendable public static func resolve(_ address: String) -> Answer {
        guard let socketAddress = try? SocketAddress(ipAddress: address, port: 0) else { return Answer() }
        var host = [CChar](repeating: 0, count: 1025)
        let found = socketAddress.withSockAddr { pointer, length in
            getnameinfo(pointer, socklen_t(length), &host, socklen_t(host.count), nil, 0, NI_NAMEREQD)
        }
        guard found == 0 else { return Answer() }
        let name = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var results: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &results) == 0 else { return Answer(ptr: name) }
        defer { freeaddrinfo(results) }
        var next = results
        while let entry = next {
            if let sockaddr = entry.pointee.ai_addr,
                let candidate = try? SocketAddress(sockaddr, length: Int(entry.pointee.ai_addrlen)),
                candidate.ipAddress == socketAddress.ipAddress
            {
                return Answer(ptr: name, name: name)
            }
            next = entry.pointee.ai_next
        }
        return Answer(ptr: name)
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
