import Foundation
import Logging
import TollgatePolicy
import TollgateConfiguration
import TollgateConsole
import TollgatePipeline
import TollgateSpool
import TollgateSpoolPostgres
import TollgateDelivery
import TollgateMetrics

public enum TollgateVersion {
    public static let string = "0.1.0"
    public static var compiler: String {
        let v = TollgatePolicyABI.compilerVersion
        return "\(v / 10_000).\(v / 100 % 100).\(v % 100)"
    }
}

/// `tollgate check`: the configuration, every policy file and every plugin.
public enum ConfigurationCheck {
    /// As an editor lists them: the configuration file's first, then each other file
    /// (policy files, users files) in the order it was first named; within a file by
    /// line and column. Problems at one place keep the order they were found in.
    static func ordered(_ diagnostics: [PolicyDiagnostic], first: String) -> [PolicyDiagnostic] {
        var rank: [String: Int] = [first: 0]
        for d in diagnostics where rank[d.location.file] == nil { rank[d.location.file] = rank.count }
        return diagnostics.enumerated().sorted { a, b in
            let (x, y) = (a.element.location, b.element.location)
            if x.file != y.file { return rank[x.file]! < rank[y.file]! }
            if x.line != y.line { return x.line < y.line }
            if x.column != y.column { return x.column < y.column }
            return a.offset < b.offset
        }.map(\.element)
    }

    public struct Report: Sendable {
        public var diagnostics: [PolicyDiagnostic]
        public var summary: String
    }

    /// Every problem in one pass: the relay's own keys, then the policy files and every
    /// stage's plugin and settings (as far as the file could be read), each once.
    public static func run(path: String) async -> Report {
        let (read, relayProblems) = ConfigurationLoader.loadCollecting(path)
        guard let configuration = read else {
            return Report(diagnostics: ordered(relayProblems, first: path), summary: "")
        }
        let logger = Logger(label: "tollgate.check")
        let (setup, pipelineProblems) = PipelineBuilder.check(configuration, logger: logger)
        var consoleProblems: [PolicyDiagnostic] = []
        var administrators: [String] = []
        if let path = configuration.console?.usersFile {
            do {
                administrators = try ConsoleUsers.load(path).names
            } catch {
                consoleProblems = error.problems.map { PolicyDiagnostic(SourceLocation(file: $0.file, line: max($0.line, 1), column: 1), $0.message) }
            }
        }
        var seen = Set<PolicyDiagnostic>()
        let diagnostics = ordered((relayProblems + consoleProblems + pipelineProblems).filter { seen.insert($0).inserted }, first: path)
        if !diagnostics.isEmpty { return Report(diagnostics: diagnostics, summary: "") }
        var lines = ["\(path): OK"]
        lines.append("  hostname: \(configuration.hostname)")
        for l in configuration.listeners {
            lines.append("  listener \(l.name): \(l.host):\(l.port) tls=\(l.tls.rawValue) auth=\(l.auth.rawValue)")
        }
        for u in configuration.upstreams {
            switch u.kind {
            case .smtp(let hosts): lines.append("  upstream \(u.name): \(hosts.map { "\($0.host):\($0.port)" }.joined(separator: ", ")) tls=\(u.tls.rawValue)")
            case .directory(let d): lines.append("  upstream \(u.name): directory \(d)")
            }
        }
        lines.append("  stages: \(setup.stages.isEmpty ? "none" : setup.stages.joined(separator: " -> "))")
        lines.append("  departments: \(setup.departments.isEmpty ? "none" : setup.departments.joined(separator: ", "))")
        if let console = configuration.console {
            let who = console.usersFile == nil ? "read-only (no users)" : "administrators \(administrators.joined(separator: ", "))"
            lines.append("  console: http://\(console.host):\(console.port)/ \(who)")
        }
        if let postgres = configuration.spool.postgres {
            // Connects, migrates if needed and says why not in one line: unreachable,
            // refused credentials, or a schema newer than this binary.
            let node = NodeIdentity.current(named: configuration.spool.node).name
            let found: Int
            do {
                found = try await PostgresSpool.inspect(postgres, node: node)
            } catch {
                return Report(diagnostics: [PolicyDiagnostic(postgres.location, "\(error)")], summary: "")
            }
            let schema = found == PostgresSpool.schemaVersion ? "schema \(found)" : "schema \(found), migrated to \(PostgresSpool.schemaVersion) at start"
            lines.append("  spool: postgres \(postgres.url) node=\(node) lease=\(Int(configuration.spool.lease))s (\(schema))")
        } else {
            lines.append("  spool: \(configuration.spool.path)")
        }
        return Report(diagnostics: [], summary: lines.joined(separator: "\n"))
    }
}
