import Foundation
import Logging
import NIOCore
import SMTPClient
import TollgateConfiguration
import TollgateSpool
import TollgateMetrics

/// The configured upstreams as transports, by name.
public enum Transports {
    /// One transport per entry of `upstreams`: an ``SMTPTransport`` with its own
    /// connection pool, or a ``DirectoryTransport``.
    /// With `only`, just those upstreams (a reload rebuilding what changed).
    public static func make(_ configuration: TollgateConfiguration, only: Set<String>? = nil, group: any EventLoopGroup, logger: Logger) throws -> [String: any Transport] {
        var transports: [String: any Transport] = [:]
        for upstream in configuration.upstreams where only?.contains(upstream.name) ?? true {
            switch upstream.kind {
            case .directory(let directory):
                transports[upstream.name] = DirectoryTransport(directory: directory)
            case .smtp(let hosts):
                let client = SMTPClientConfiguration(
                    tls: upstream.tls,
                    verifyCertificate: upstream.verifyCertificate,
                    caFile: upstream.caFile,
                    tlsPolicy: upstream.tlsPolicy,
                    username: upstream.username,
                    password: try upstream.passwordFile.map(readPassword),
                    heloName: configuration.hostname,
                    connectTimeout: .milliseconds(Int64(upstream.connectTimeout * 1000)),
                    commandTimeout: .milliseconds(Int64(upstream.commandTimeout * 1000)),
                    dataTimeout: .milliseconds(Int64(upstream.dataTimeout * 1000))
                )
                transports[upstream.name] = SMTPTransport(pool: UpstreamPool(
                    name: upstream.name,
                    hosts: hosts.map { .init(host: $0.host, port: $0.port) },
                    configuration: client,
                    maxConnections: upstream.maxConnections,
                    group: group,
                    logger: logger
                ))
            }
        }
        return transports
    }

    private static func readPassword(_ file: String) throws -> String {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw StartupError("cannot read the password file \(file)")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// What a reload changes in `upstreams`: which upstreams are new, gone, or changed and
/// in which settings — so that only those are replaced and the log says what changed.
public struct UpstreamChanges: Sendable, Equatable {
    public var added: [String] = []
    public var removed: [String] = []
    /// Upstream name → the settings that differ (`hosts`, `tls`, `password`, …).
    public var changed: [String: [String]] = [:]

    public var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty }

    /// The upstreams whose transport must be made anew.
    public var rebuilt: Set<String> { Set(added).union(changed.keys) }

    /// The running upstreams' settings as ``fingerprint(_:)`` took them when their
    /// transports were made — files read then, not now — against the new configuration's.
    public init(from before: Fingerprint, to after: Fingerprint) {
        added = after.keys.sorted().filter { before[$0] == nil }
        removed = before.keys.sorted().filter { after[$0] == nil }
        for (name, settings) in after {
            guard let previous = before[name] else { continue }
            let differing = settings.keys.sorted().filter { settings[$0] != previous[$0] }
            if !differing.isEmpty { changed[name] = differing }
        }
    }

    /// One line for the reload log: `added: x; removed: y; changed: relay (hosts, password)`.
    public var summary: String {
        var parts: [String] = []
        if !added.isEmpty { parts.append("added: " + added.joined(separator: ", ")) }
        if !removed.isEmpty { parts.append("removed: " + removed.joined(separator: ", ")) }
        if !changed.isEmpty {
            parts.append("changed: " + changed.keys.sorted().map { "\($0) (\(changed[$0]!.joined(separator: ", ")))" }.joined(separator: ", "))
        }
        return parts.isEmpty ? "unchanged" : parts.joined(separator: "; ")
    }

    /// Each upstream's settings as comparable text, by name.
    public typealias Fingerprint = [String: [String: String]]

    public static func fingerprint(_ upstreams: [TollgateConfiguration.Upstream]) -> Fingerprint {
        Dictionary(upstreams.map { ($0.name, settings($0)) }, uniquingKeysWith: { a, _ in a })
    }

    /// Each setting of an upstream as comparable text. Files (password, CA) count by
    /// their content, so a rotated password or CA under the same name is a change; the
    /// password is kept only as a digest of it, never as text.
    static func settings(_ u: TollgateConfiguration.Upstream) -> [String: String] {
        var hosts = "", directory = ""
        switch u.kind {
        case .smtp(let list): hosts = list.map { "\($0.host):\($0.port)" }.joined(separator: ",")
        case .directory(let d): directory = d
        }
        return [
            "hosts": hosts,
            "directory": directory,
            "tls": u.tls.rawValue,
            "verify_certificate": "\(u.verifyCertificate)",
            "ca_file": u.caFile.map { "\($0) \(digest(ofFile: $0))" } ?? "",
            "tls_min_version": u.tlsPolicy.minimumVersion.rawValue,
            "tls_ciphers": u.tlsPolicy.suites.map(\.name).joined(separator: ":"),
            "username": u.username ?? "",
            "password": u.passwordFile.map { digest(ofFile: $0) } ?? "",
            "max_connections": "\(u.maxConnections)",
            "timeouts": "\(u.connectTimeout)/\(u.commandTimeout)/\(u.dataTimeout)",
        ]
    }

    /// FNV-1a of a file's bytes ("" if unreadable): enough to see that it changed.
    static func digest(ofFile path: String) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in data { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(hash, radix: 16)
    }
}
