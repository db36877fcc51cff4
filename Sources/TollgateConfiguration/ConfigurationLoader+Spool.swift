import Foundation
import TollgatePolicy
import Yams

extension ConfigurationLoader {
    /// `spool:` (SPEC §6): `path`, or `postgres` with `node` and `lease`.
    static func readSpool(_ node: Node, _ reader: inout YAMLReader, _ spool: inout TollgateConfiguration.Spool, _ resolve: (String) -> String) {
        spool.location = reader.location(node)
        var pathNode: Node?
        var postgresNode: Node?
        for (k, _, v) in reader.mapping(node, allowed: ConfigurationKeys.spool, what: "spool") {
            switch k {
            case "path":
                pathNode = v
                if let p = reader.string(v, "spool.path") { spool.path = resolve(p) }
            case "postgres":
                postgresNode = v
                spool.postgres = readPostgres(v, &reader, resolve)
            case "node":
                guard let name = reader.string(v, "spool.node") else { continue }
                // Claim owners are `node/pid/…`: a slash would make another node's claims look like ours.
                if name.isEmpty || name.utf8.count > 63 || !name.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: "/") }) {
                    reader.error(v, "spool.node must be 1 to 63 printable ASCII characters without spaces or '/'")
                } else {
                    spool.node = name
                }
            case "history":
                guard let keep = reader.duration(v, "spool.history") else { continue }
                if keep < 0 || keep > 366 * 86400 { reader.error(v, "spool.history must be from 0 (keep none) to 366d") } else { spool.history = keep }
            default:
                guard let lease = reader.duration(v, "spool.lease") else { continue }
                if lease < 3 { reader.error(v, "spool.lease must be at least 3s (a delivery renews its claim every third of it)") } else { spool.lease = lease }
            }
        }
        if let pathNode, postgresNode != nil {
            reader.error(pathNode, "spool has both path and postgres: choose one store")
        }
    }

    private static func readPostgres(_ node: Node, _ reader: inout YAMLReader, _ resolve: (String) -> String) -> TollgateConfiguration.Postgres? {
        let allowed = ConfigurationKeys.postgres
        var postgres = TollgateConfiguration.Postgres(url: "", host: "", port: 5432, user: "", database: "", location: reader.location(node))
        var urlSeen = false
        var caNode: Node?
        for (k, _, v) in reader.mapping(node, allowed: allowed, what: "spool.postgres") {
            switch k {
            case "url":
                guard let text = reader.string(v, "spool.postgres.url") else { continue }
                urlSeen = true
                switch PostgresURL.parse(text) {
                case .success(let url):
                    postgres.url = text
                    postgres.host = url.host
                    postgres.port = url.port
                    postgres.user = url.user
                    postgres.database = url.database
                case .failure(let problem):
                    reader.error(v, "spool.postgres.url: \(problem.message)")
                }
            case "password_file":
                guard let p = reader.string(v, "spool.postgres.password_file").map(resolve) else { continue }
                reader.requireReadable(v, p)
                postgres.passwordFile = p
            case "tls":
                if let mode = reader.choice(v, "spool.postgres.tls", TollgateConfiguration.PostgresTLSMode.self, TollgateConfiguration.PostgresTLSMode.allCases) {
                    postgres.tls = mode
                }
            case "ca_file":
                caNode = v
                guard let p = reader.string(v, "spool.postgres.ca_file").map(resolve) else { continue }
                reader.requireReadable(v, p)
                postgres.caFile = p
            case "statement_timeout":
                guard let d = reader.duration(v, "spool.postgres.statement_timeout") else { continue }
                if d < 1 { reader.error(v, "spool.postgres.statement_timeout must be at least 1s") } else { postgres.statementTimeout = d }
            case "connect_timeout":
                guard let d = reader.duration(v, "spool.postgres.connect_timeout") else { continue }
                if d < 1 { reader.error(v, "spool.postgres.connect_timeout must be at least 1s") } else { postgres.connectTimeout = d }
            default:
                if let n = reader.int(v, "spool.postgres.max_connections", min: 1) { postgres.maxConnections = n }
            }
        }
        if !urlSeen {
            reader.error(node, "spool.postgres needs a url (postgresql://USER@HOST:PORT/DATABASE)")
            return nil
        }
        if let caNode, postgres.tls != .verifyFull {
            reader.error(caNode, "spool.postgres.ca_file is used only with tls: verify-full")
        }
        return postgres.host.isEmpty ? nil : postgres
    }
}

/// `postgresql://USER@HOST[:PORT]/DATABASE`, the part of libpq's URI form that
/// Tollgate takes. A password in the URL is refused (it belongs in `password_file`),
/// and so are query parameters (TLS has its own key).
public struct PostgresURL: Sendable, Hashable {
    public var user: String
    public var host: String
    public var port: Int
    public var database: String

    public struct Problem: Error, Hashable {
        public var message: String
    }

    public static func parse(_ text: String) -> Result<PostgresURL, Problem> {
        func fail(_ message: String) -> Result<PostgresURL, Problem> { .failure(Problem(message: message)) }
        var rest = Substring(text)
        if rest.hasPrefix("postgresql://") {
            rest = rest.dropFirst("postgresql://".count)
        } else if rest.hasPrefix("postgres://") {
            rest = rest.dropFirst("postgres://".count)
        } else {
            return fail("must start with postgresql://")
        }
        if rest.contains("?") { return fail("query parameters are not taken; use the keys of spool.postgres (tls, ca_file, …)") }
        guard let at = rest.firstIndex(of: "@") else { return fail("needs a user: postgresql://USER@HOST/DATABASE") }
        let userPart = rest[..<at]
        if userPart.contains(":") { return fail("holds a password: put it in spool.postgres.password_file instead") }
        guard let user = String(userPart).removingPercentEncoding, !user.isEmpty else { return fail("needs a user: postgresql://USER@HOST/DATABASE") }
        rest = rest[rest.index(after: at)...]
        guard let slash = rest.firstIndex(of: "/") else { return fail("needs a database: postgresql://USER@HOST/DATABASE") }
        var hostPart = rest[..<slash]
        guard let database = String(rest[rest.index(after: slash)...]).removingPercentEncoding, !database.isEmpty, !database.contains("/") else {
            return fail("needs a database: postgresql://USER@HOST/DATABASE")
        }
        var port = 5432
        if hostPart.hasPrefix("[") {
            guard let close = hostPart.firstIndex(of: "]") else { return fail("has an unclosed [ in the host") }
            let after = hostPart[hostPart.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { return fail("has a bad port") }
                port = p
            } else if !after.isEmpty {
                return fail("has a bad host")
            }
            hostPart = hostPart[hostPart.index(after: hostPart.startIndex)..<close]
        } else if let colon = hostPart.lastIndex(of: ":") {
            guard let p = Int(hostPart[hostPart.index(after: colon)...]), (1...65535).contains(p) else { return fail("has a bad port") }
            port = p
            hostPart = hostPart[..<colon]
        }
        guard let host = String(hostPart).removingPercentEncoding, !host.isEmpty else { return fail("needs a host") }
        return .success(PostgresURL(user: user, host: host, port: port, database: database))
    }
}
