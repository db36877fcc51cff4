import Foundation
import SMTPClient
import SMTPCore
import SMTPServer
import TollgatePolicy
import Yams

/// Reads `tollgate.yaml` into a ``TollgateConfiguration``. Every problem is reported
/// with its location; unknown keys are errors (typo safety).
public enum ConfigurationLoader {
    public struct Failure: Error, CustomStringConvertible {
        public var diagnostics: [PolicyDiagnostic]
        public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
    }

    /// The file to use: `-c FILE`, else `$TOLLGATE_CONFIG`, else `./tollgate.yaml`, else
    /// the installed one beside the executable (`PREFIX/etc/tollgate/tollgate.yaml` for
    /// `PREFIX/bin/tollgate`, as `make install` lays them out), else
    /// `/etc/tollgate/tollgate.yaml`.
    public static func resolvePath(_ explicit: String?) -> String {
        if let explicit { return explicit }
        if let env = ProcessInfo.processInfo.environment["TOLLGATE_CONFIG"], !env.isEmpty { return env }
        if FileManager.default.fileExists(atPath: "tollgate.yaml") { return "tollgate.yaml" }
        if let installed = installedPath(), FileManager.default.fileExists(atPath: installed) { return installed }
        return "/etc/tollgate/tollgate.yaml"
    }

    /// `PREFIX/etc/tollgate/tollgate.yaml` when this executable is `PREFIX/bin/…` (a
    /// symbolic link followed), else nil: a build folder's binary has none.
    static func installedPath(executable: String? = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) -> String? {
        guard let executable else { return nil }
        let bin = (executable as NSString).deletingLastPathComponent
        guard (bin as NSString).lastPathComponent == "bin" else { return nil }
        let prefix = (bin as NSString).deletingLastPathComponent
        return (prefix == "/" ? "" : prefix) + "/etc/tollgate/tollgate.yaml"
    }

    /// Where ``resolvePath(_:)`` looks, in order; said when no file is found.
    public static let searchOrder = "-c FILE, else $TOLLGATE_CONFIG, else ./tollgate.yaml, else PREFIX/etc/tollgate/tollgate.yaml beside PREFIX/bin/tollgate, else /etc/tollgate/tollgate.yaml"

    public static func load(_ path: String) throws(Failure) -> TollgateConfiguration {
        let (configuration, diagnostics) = loadCollecting(path)
        guard let configuration, diagnostics.isEmpty else { throw Failure(diagnostics: diagnostics) }
        return configuration
    }

    /// Every problem of the file in one pass, and the configuration as far as it could
    /// be read (nil when the file cannot be read or is not YAML), so that `check` can
    /// go on to the plugins' settings.
    public static func loadCollecting(_ path: String) -> (TollgateConfiguration?, [PolicyDiagnostic]) {
        let start = SourceLocation(file: path, line: 1, column: 1)
        guard let data = FileManager.default.contents(atPath: path) else {
            let why = PolicySettingsReader.whyUnreadable(path) ?? "it is not a readable file"
            return (nil, [PolicyDiagnostic(start, "cannot read the configuration file: \(why) (the file is \(searchOrder))")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return (nil, [PolicyDiagnostic(start, "the configuration file is not UTF-8")])
        }
        return parseCollecting(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws(Failure) -> TollgateConfiguration {
        let (configuration, diagnostics) = parseCollecting(text, file: file)
        guard let configuration, diagnostics.isEmpty else { throw Failure(diagnostics: diagnostics) }
        return configuration
    }

    public static func parseCollecting(_ text: String, file: String) -> (TollgateConfiguration?, [PolicyDiagnostic]) {
        var reader = YAMLReader(file: file)
        var config = TollgateConfiguration(file: file)
        let base = (file as NSString).deletingLastPathComponent
        func resolve(_ path: String) -> String {
            path.hasPrefix("/") ? path : (base.isEmpty ? path : base + "/" + path)
        }
        guard let root = reader.compose(text) else {
            if reader.diagnostics.isEmpty {
                reader.error(nil, "the configuration file is empty")
            }
            return (nil, reader.diagnostics)
        }
        let top = ConfigurationKeys.top
        var listenersNode: Node?
        var upstreamsNode: Node?
        var defaultUpstreamNode: Node?
        for (key, keyNode, value) in reader.mapping(root, allowed: top, what: "the configuration") {
            switch key {
            case "hostname":
                if let h = reader.string(value, "hostname") {
                    if h.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) { config.hostname = h } else { reader.error(value, "hostname must be plain ASCII without spaces") }
                }
            case "listeners":
                listenersNode = value
                config.listeners = reader.sequence(value, "listeners").compactMap { readListener($0, &reader) }
            case "tls":
                var certificate: String?
                var key: String?
                var policy = TLSPolicy.intermediate
                var versionNode: Node?
                var clientCAFile: String?
                for (k, _, v) in reader.mapping(value, allowed: ConfigurationKeys.tls, what: "tls") {
                    switch k {
                    case "min_version":
                        versionNode = v
                        if let version = reader.choice(v, "tls.min_version", TLSPolicy.Version.self, TLSPolicy.Version.allCases) { policy.minimumVersion = version }
                    case "ciphers":
                        if let suites = reader.cipherSuites(v, "tls.ciphers") { policy.suites = suites }
                    default:
                        let path = reader.string(v, "tls.\(k)").map(resolve)
                        if let path { reader.requireReadable(v, path) }
                        switch k {
                        case "certificate": certificate = path
                        case "key": key = path
                        default: clientCAFile = path
                        }
                    }
                }
                reader.checkSuitesCoverVersion(policy, versionNode ?? value, "tls.ciphers")
                if let certificate, let key {
                    config.tls = .init(certificate: certificate, key: key, policy: policy, clientCAFile: clientCAFile)
                } else {
                    reader.error(value, "tls needs both certificate and key")
                }
            case "limits":
                readLimits(value, &reader, &config.limits)
            case "spool":
                readSpool(value, &reader, &config.spool, resolve)
            case "upstreams":
                upstreamsNode = value
                config.upstreams = reader.sequence(value, "upstreams").compactMap { readUpstream($0, &reader, resolve) }
            case "delivery":
                for (k, _, v) in reader.mapping(value, allowed: ConfigurationKeys.delivery, what: "delivery") {
                    switch k {
                    case "default_upstream":
                        defaultUpstreamNode = v
                        config.delivery.defaultUpstream = reader.string(v, "delivery.default_upstream")
                    case "retry":
                        guard case .sequence(let items) = v else {
                            // One problem, said once: not also "needs at least one interval".
                            reader.error(v, "delivery.retry must be a list of intervals such as [5m, 30m, 2h]" + (v.scalar.map { ", not '\($0.string)'" } ?? ""))
                            continue
                        }
                        let list = items.compactMap { reader.duration($0, "a retry interval") }
                        if items.isEmpty { reader.error(v, "delivery.retry needs at least one interval") } else if list.count == items.count { config.delivery.retry = list }
                    case "max_lifetime":
                        if let d = reader.duration(v, "delivery.max_lifetime") { config.delivery.maxLifetime = d }
                    default:
                        if let n = reader.int(v, "delivery.concurrency", min: 1) { config.delivery.concurrency = n }
                    }
                }
            case "plugins":
                for (_, _, v) in reader.mapping(value, allowed: ConfigurationKeys.plugins, what: "plugins") {
                    config.plugins.path = reader.strings(v, "plugins.path").map(resolve)
                }
            case "stages":
                config.stages = reader.sequence(value, "stages").compactMap { readStage($0, &reader, resolve) }
            case "policies":
                if let p = reader.string(value, "policies") {
                    let path = resolve(p)
                    var isDirectory: ObjCBool = false
                    if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) || !isDirectory.boolValue {
                        reader.error(value, "policies: \(path) is not a folder")
                    }
                    config.policies = path
                }
            case "metrics":
                for (_, _, v) in reader.mapping(value, allowed: ConfigurationKeys.metrics, what: "metrics") {
                    if let (h, p) = reader.hostPort(v, "metrics.address") { config.metrics = .init(host: h, port: p) }
                }
            case "console":
                var address: (String, Int)?
                var users: String?
                var timeout: Double?
                var hostnames: [String] = []
                for (k, _, v) in reader.mapping(value, allowed: ConfigurationKeys.console, what: "console") {
                    switch k {
                    case "address": address = reader.hostPort(v, "console.address")
                    case "hostnames":
                        hostnames = reader.sequence(v, "console.hostnames").compactMap { reader.string($0, "console.hostnames[]") }
                    case "users":
                        users = reader.string(v, "console.users").map(resolve)
                        if let users { reader.requireReadable(v, users) }
                    default:
                        timeout = reader.duration(v, "console.session_timeout")
                        if let t = timeout, t < 60 { reader.error(v, "console.session_timeout must be at least 1m") }
                    }
                }
                if let (host, port) = address {
                    var console = TollgateConfiguration.Console(host: host, port: port, usersFile: users)
                    if let timeout { console.sessionTimeout = timeout }
                    console.hostnames = hostnames
                    config.console = console
                } else {
                    reader.error(value, "console needs an address (host:port)")
                }
            case "log":
                for (k, _, v) in reader.mapping(value, allowed: ConfigurationKeys.log, what: "log") {
                    guard let s = reader.string(v, "log.\(k)") else { continue }
                    if k == "level" {
                        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
                        if levels.contains(s) { config.log.level = s } else { reader.error(v, "log.level must be one of \(levels.joined(separator: ", "))") }
                    } else {
                        if ["text", "json"].contains(s) { config.log.format = s } else { reader.error(v, "log.format must be text or json") }
                    }
                }
            default:
                reader.error(keyNode, "unknown key '\(key)'")
            }
        }

        // Cross-checks.
        if config.listeners.isEmpty, reader.diagnostics.isEmpty {
            reader.error(listenersNode ?? root, "at least one listener is needed")
        }
        var names = Set<String>()
        for listener in config.listeners {
            if !names.insert(listener.name).inserted {
                reader.diagnostics.append(PolicyDiagnostic(listener.location, "duplicate listener name '\(listener.name)'"))
            }
            if listener.tls != .none, config.tls == nil {
                reader.diagnostics.append(PolicyDiagnostic(listener.location, "listener '\(listener.name)' uses TLS but there is no tls: section with a certificate and key"))
            }
            if listener.auth != .none, listener.tls == .none {
                reader.diagnostics.append(PolicyDiagnostic(listener.location, "listener '\(listener.name)' has auth but no TLS: AUTH is only offered after TLS"))
            }
        }
        if config.upstreams.isEmpty, reader.diagnostics.isEmpty {
            reader.error(upstreamsNode ?? root, "at least one upstream is needed")
        }
        var upstreamNames = Set<String>()
        for upstream in config.upstreams where !upstreamNames.insert(upstream.name).inserted {
            reader.diagnostics.append(PolicyDiagnostic(upstream.location, "duplicate upstream name '\(upstream.name)'"))
        }
        if let name = config.delivery.defaultUpstream {
            if config.upstream(named: name) == nil {
                reader.error(defaultUpstreamNode, "delivery.default_upstream names '\(name)', which is not among the upstreams")
            }
        } else if let first = config.upstreams.first {
            config.delivery.defaultUpstream = first.name
        }
        return (config, reader.diagnostics)
    }

    static func readListener(_ node: Node, _ reader: inout YAMLReader) -> TollgateConfiguration.Listener? {
        var name: String?
        var address: (String, Int)?
        // A bad address is reported where it is, not a second time as missing.
        var addressGiven = false
        var listener = TollgateConfiguration.Listener(name: "", host: "", port: 0, location: reader.location(node))
        for (k, _, v) in reader.mapping(node, allowed: ConfigurationKeys.listener, what: "a listener") {
            switch k {
            case "name": name = reader.string(v, "listener name")
            case "address":
                addressGiven = true
                address = reader.hostPort(v, "listener address")
            case "tls": listener.tls = reader.choice(v, "listener tls", ListenerTLSMode.self, [.none, .starttls, .implicit]) ?? .none
            case "auth": listener.auth = reader.choice(v, "listener auth", ListenerAuthMode.self, [.none, .optional, .required]) ?? .none
            case "auth_after_helo": listener.authAfterHelo = reader.bool(v, "listener auth_after_helo") ?? listener.authAfterHelo
            case "strict_envelopes": listener.strictEnvelopes = reader.bool(v, "listener strict_envelopes") ?? listener.strictEnvelopes
            default:
                listener.clients = reader.sequence(v, "clients").compactMap { n in
                    guard let s = reader.string(n, "a client network") else { return nil }
                    switch CIDRNetwork.parse(s) {
                    case .success(let network): return network
                    case .failure(let error):
                        reader.error(n, "\(error.message) (like 10.0.0.0/8 or ::1/128)")
                        return nil
                    }
                }
            }
        }
        guard let name else {
            reader.error(node, "a listener needs a name")
            return nil
        }
        guard let address else {
            if !addressGiven { reader.error(node, "listener '\(name)' needs an address (host:port)") }
            return nil
        }
        listener.name = name
        listener.host = address.0
        listener.port = address.1
        return listener
    }

    static func readLimits(_ node: Node, _ reader: inout YAMLReader, _ limits: inout TollgateConfiguration.Limits) {
        let allowed = ConfigurationKeys.limits
        for (k, _, v) in reader.mapping(node, allowed: allowed, what: "limits") {
            switch k {
            case "max_message_size":
                if let s = reader.size(v, "limits.max_message_size") {
                    if s < SMTPLimits.minMessageSize { reader.error(v, "limits.max_message_size must be at least 64KB (RFC 5321 §4.5.3.1.7)") } else { limits.maxMessageSize = s }
                }
            case "max_recipients":
                if let n = reader.int(v, "limits.max_recipients", min: SMTPLimits.minRecipients, why: "RFC 5321 §4.5.3.1.8 asks a server to take 100 recipients") {
                    limits.maxRecipients = n
                }
            case "max_connections":
                if let n = reader.int(v, "limits.max_connections", min: 1) { limits.maxConnections = n }
            case "max_connections_per_client":
                if let n = reader.int(v, "limits.max_connections_per_client", min: 1) { limits.maxConnectionsPerClient = n }
            case "command_timeout":
                if let d = reader.duration(v, "limits.command_timeout") { limits.commandTimeout = max(d, 1) }
            case "stress_command_timeout":
                if let d = reader.duration(v, "limits.stress_command_timeout") { limits.stressCommandTimeout = max(d, 1) }
            case "data_timeout":
                if let d = reader.duration(v, "limits.data_timeout") { limits.dataTimeout = max(d, 1) }
            case "max_auth_failures_per_client":
                if let n = reader.int(v, "limits.max_auth_failures_per_client") { limits.maxAuthFailuresPerClient = n }
            case "auth_failure_window":
                if let d = reader.duration(v, "limits.auth_failure_window") { limits.authFailureWindow = max(d, 1) }
            case "store_timeout":
                if let d = reader.duration(v, "limits.store_timeout") { limits.storeTimeout = max(d, 0.1) }
            case "drain_timeout":
                if let d = reader.duration(v, "limits.drain_timeout") { limits.drainTimeout = max(d, 0) }
            case "content_memory":
                if let s = reader.size(v, "limits.content_memory") {
                    if s < SMTPLimits.minMessageSize { reader.error(v, "limits.content_memory must be at least 64KB") } else { limits.contentMemory = s }
                }
            case "reverse_dns_timeout":
                if let d = reader.duration(v, "limits.reverse_dns_timeout") { limits.reverseDNSTimeout = max(d, 0) }
            case "address_literals":
                if let choice = reader.choice(v, "limits.address_literals", AddressLiteralPolicy.self, AddressLiteralPolicy.allCases) {
                    limits.acceptsAddressLiterals = choice == .accept
                }
            default:
                if let p = reader.choice(v, "limits.bare_newline", BareNewlinePolicy.self, [.normalize, .reject]) { limits.bareNewline = p }
            }
        }
    }

    static func readUpstream(_ node: Node, _ reader: inout YAMLReader, _ resolve: (String) -> String) -> TollgateConfiguration.Upstream? {
        let allowed = ConfigurationKeys.upstream
        var versionNode: Node?
        var name: String?
        var hosts: [(String, Int)]?
        var directory: String?
        var authNode: Node?
        var upstream = TollgateConfiguration.Upstream(name: "", kind: .directory(""), location: reader.location(node))
        for (k, _, v) in reader.mapping(node, allowed: allowed, what: "an upstream") {
            switch k {
            case "name": name = reader.string(v, "upstream name")
            case "hosts":
                let entries = reader.sequence(v, "upstream hosts")
                hosts = entries.compactMap { reader.hostPort($0, "an upstream host") }
                if case .sequence(let list) = v, list.isEmpty { reader.error(v, "hosts needs at least one host:port") }
            case "directory": directory = reader.string(v, "upstream directory").map(resolve)
            case "tls":
                if let mode = reader.choice(v, "upstream tls", UpstreamTLSMode.self, UpstreamTLSMode.allCases) { upstream.tls = mode }
            case "verify_certificate": upstream.verifyCertificate = reader.bool(v, "verify_certificate") ?? true
            case "ca_file":
                if let p = reader.string(v, "ca_file").map(resolve) {
                    reader.requireReadable(v, p)
                    upstream.caFile = p
                }
            case "tls_min_version":
                versionNode = v
                if let version = reader.choice(v, "tls_min_version", TLSPolicy.Version.self, TLSPolicy.Version.allCases) { upstream.tlsPolicy.minimumVersion = version }
            case "tls_ciphers":
                if let suites = reader.cipherSuites(v, "tls_ciphers") { upstream.tlsPolicy.suites = suites }
            case "auth":
                for (ak, _, av) in reader.mapping(v, allowed: ConfigurationKeys.upstreamAuth, what: "upstream auth") {
                    if ak == "username" {
                        upstream.username = reader.string(av, "auth.username")
                    } else if let p = reader.string(av, "auth.password_file").map(resolve) {
                        reader.requireReadable(av, p)
                        upstream.passwordFile = p
                    }
                }
                if (upstream.username == nil) != (upstream.passwordFile == nil) { reader.error(v, "upstream auth needs both username and password_file") }
                authNode = v
            case "connect_timeout":
                if let d = reader.duration(v, "upstream connect_timeout") { upstream.connectTimeout = max(d, 1) }
            case "command_timeout":
                if let d = reader.duration(v, "upstream command_timeout") { upstream.commandTimeout = max(d, 1) }
            case "data_timeout":
                if let d = reader.duration(v, "upstream data_timeout") { upstream.dataTimeout = max(d, 1) }
            default:
                if let n = reader.int(v, "max_connections", min: 1) { upstream.maxConnections = n }
            }
        }
        guard let name else {
            reader.error(node, "an upstream needs a name")
            return nil
        }
        upstream.name = name
        reader.checkSuitesCoverVersion(upstream.tlsPolicy, versionNode ?? node, "tls_ciphers")
        if let authNode, upstream.tls == .none || upstream.tls == .opportunistic {
            // Credentials only ever go over TLS: with these modes they might not.
            reader.error(authNode, "upstream '\(name)' has auth with tls: \(upstream.tls.rawValue); use tls: required or implicit so credentials never go in plaintext")
        }
        switch (hosts, directory) {
        case (let h?, nil): upstream.kind = .smtp(hosts: h.map { (host: $0.0, port: $0.1) })
        case (nil, let d?): upstream.kind = .directory(d)
        case (.some, .some):
            reader.error(node, "upstream '\(name)' has both hosts and directory; give one")
            return nil
        case (nil, nil):
            reader.error(node, "upstream '\(name)' needs hosts (SMTP) or directory (outbox)")
            return nil
        }
        return upstream
    }

    static func readStage(_ node: Node, _ reader: inout YAMLReader, _ resolve: (String) -> String) -> TollgateConfiguration.Stage? {
        var use: String?
        var stage = TollgateConfiguration.Stage(use: "", settings: .empty(at: reader.location(node)), location: reader.location(node))
        for (k, _, v) in reader.mapping(node, allowed: ConfigurationKeys.stage, what: "a stage") {
            switch k {
            case "use": use = reader.string(v, "stage use")
            case "library": stage.library = reader.string(v, "stage library").map(resolve)
            case "settings": stage.settings = reader.settings(v)
            case "timeout": if let d = reader.duration(v, "stage timeout") { stage.timeout = max(d, 0.001) }
            case "mode": stage.mode = reader.choice(v, "mode", TollgateConfiguration.StageMode.self, TollgateConfiguration.StageMode.allCases) ?? .enforce
            default: stage.onError = reader.choice(v, "on_error", TollgateConfiguration.OnError.self, [.defer, .accept, .reject]) ?? .defer
            }
        }
        guard let use else {
            reader.error(node, "a stage needs use: PLUGIN-NAME")
            return nil
        }
        stage.use = use
        return stage
    }
}

/// `limits.address_literals`.
enum AddressLiteralPolicy: String, CaseIterable {
    case reject, accept
}
