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
    public static func make(_ configuration: TollgateConfiguration, group: any EventLoopGroup, logger: Logger) throws -> [String: any Transport] {
        var transports: [String: any Transport] = [:]
        for upstream in configuration.upstreams {
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
