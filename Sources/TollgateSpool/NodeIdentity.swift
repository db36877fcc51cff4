#if canImport(Glibc)
import Glibc
import TollgateConfiguration
#endif

/// Who this process is to the spool: the node name recorded as `accepted_by`, and the
/// owner name of its delivery claims (SPEC §6 `spool.node`; the hostname for now).
public struct NodeIdentity: Sendable, Hashable {
    /// The node's name: the host's name.
    public var name: String
    /// Unique to this process (host, pid and random bits), so that a restarted node or
    /// a second process on the same host never takes another's claims for its own.
    public var claimOwner: String

    public init(name: String, claimOwner: String) {
        self.name = name
        self.claimOwner = claimOwner
    }

    /// This host and process.
    public static func current() -> NodeIdentity {
        var buffer = [CChar](repeating: 0, count: 256)
        let name = gethostname(&buffer, buffer.count) == 0
            ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            : "localhost"
        let incarnation = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        return NodeIdentity(name: name, claimOwner: "\(name)/\(getpid())/\(incarnation)")
    }
}
