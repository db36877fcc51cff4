import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Who this process is to the spool: the node name recorded as `accepted_by`, and the
/// owner name of its delivery claims (SPEC §6 `spool.node`, by default the hostname).
public struct NodeIdentity: Sendable, Hashable {
    /// The node's name: `spool.node`, or the host's name.
    public var name: String
    /// Unique to this process (host, pid and random bits), so that a restarted node or
    /// a second process on the same host never takes another's claims for its own.
    public var claimOwner: String

    public init(name: String, claimOwner: String) {
        self.name = name
        self.claimOwner = claimOwner
    }

    /// Whether the process named in a claim owner of this host (`node/pid/…`) is still
    /// a running Tollgate: a second live process of the node keeps its claims.
    public static func isRunning(_ owner: String) -> Bool {
        let parts = owner.split(separator: "/")
        guard parts.count >= 2, let pid = Int32(parts[1]), pid > 0 else { return false }
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        // A reused pid: alive, but not a Tollgate.
        guard let cmdline = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) else { return true }
        return cmdline.contains("tollgate")
    }

    /// This process, as node `named` (`spool.node`), or as the host's name.
    public static func current(named: String? = nil) -> NodeIdentity {
        var buffer = [CChar](repeating: 0, count: 256)
        let name = named ?? (gethostname(&buffer, buffer.count) == 0
            ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            : "localhost")
        let incarnation = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        return NodeIdentity(name: name, claimOwner: "\(name)/\(getpid())/\(incarnation)")
    }
}
