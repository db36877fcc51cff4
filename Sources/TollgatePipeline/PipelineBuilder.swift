import Foundation
import Logging
import NIOCore
import TollgatePolicy
import TollgateConfiguration
import TollgateMetrics
import SMTPCore

/// The loaded policy: the pipeline of stages and the department policies.
public struct PolicySetup: Sendable {
    public var pipeline: PolicyPipeline
    public var policies: DepartmentPolicies
}

/// Loads the department policies and the plugins named in `stages:`, and builds the
/// pipeline from them.
public enum PipelineBuilder {
    public struct Failure: Error, CustomStringConvertible {
        public var diagnostics: [PolicyDiagnostic]
        public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
    }

    public typealias Clock = @Sendable () -> Double

    public static func loadPolicies(_ configuration: TollgateConfiguration) -> (DepartmentPolicies, [PolicyDiagnostic]) {
        guard let folder = configuration.policies else { return (DepartmentPolicies(), []) }
        return DepartmentPolicies.load(
            folder: folder,
            plugins: Set(configuration.stages.map(\.use)),
            upstreams: Set(configuration.upstreams.map(\.name))
        )
    }

    /// Locates and loads every stage's plugin and validates its settings (and its
    /// sections of the department policies). Problems are returned located.
    public static func loadFactories(
        _ configuration: TollgateConfiguration,
        policies: DepartmentPolicies,
        logger: Logger,
        counters: any PolicyCounters = MemoryCounters(),
        clock: @escaping Clock
    ) -> ([(TollgateConfiguration.Stage, any PolicyStageFactory, RelayPolicyHost)], [PolicyDiagnostic]) {
        var loaded: [(TollgateConfiguration.Stage, any PolicyStageFactory, RelayPolicyHost)] = []
        var diagnostics: [PolicyDiagnostic] = []
        let searchPath = PluginLoader.searchPath(configured: configuration.plugins.path)
        for stage in configuration.stages {
            guard let path = stage.library ?? PluginLoader.locate(stage.use, searchPath: searchPath) else {
                let tried = PluginLoader.candidateNames(stage.use).joined(separator: ", ")
                let guess = PluginLoader.closest(to: stage.use, in: PluginLoader.available(searchPath: searchPath)).map { " — did you mean '\($0)'?" } ?? ""
                diagnostics.append(PolicyDiagnostic(stage.location, "plugin '\(stage.use)' not found\(guess) (looked for \(tried) in \(searchPath.joined(separator: ", ")))"))
                continue
            }
            let factory: any PolicyStageFactory
            do {
                factory = try PluginLoader.load(path)
            } catch {
                diagnostics.append(PolicyDiagnostic(stage.location, "plugin '\(stage.use)' refused: \(error)"))
                continue
            }
            guard factory.name == stage.use else {
                diagnostics.append(PolicyDiagnostic(stage.location, "\(path) is the plugin '\(factory.name)', not '\(stage.use)'"))
                continue
            }
            let host = RelayPolicyHost(plugin: stage.use, logger: logger, policies: policies, counters: stage.mode == .shadow ? ShadowCounters(counters) : counters, clock: clock)
            let problems = factory.validate(settings: stage.settings, host: host)
            diagnostics += problems
            if problems.isEmpty { loaded.append((stage, factory, host)) }
        }
        return (loaded, diagnostics)
    }

    /// Every problem in the policy files and plugin settings, for `tollgate check`.
    public static func check(_ configuration: TollgateConfiguration, logger: Logger) -> (PolicySetupSummary, [PolicyDiagnostic]) {
        let (policies, policyProblems) = loadPolicies(configuration)
        let (loaded, pluginProblems) = loadFactories(configuration, policies: policies, logger: logger, clock: { Date().timeIntervalSince1970 })
        return (PolicySetupSummary(stages: loaded.map(\.0.use), departments: policies.departments.map(\.info.name)), policyProblems + pluginProblems)
    }

    /// Builds a ready pipeline, or fails with every problem found.
    public static func build(
        _ configuration: TollgateConfiguration,
        logger: Logger,
        metrics: RelayMetrics?,
        counters: any PolicyCounters = MemoryCounters(),
        clock: @escaping Clock = { Date().timeIntervalSince1970 }
    ) async throws -> PolicySetup {
        let (policies, policyProblems) = loadPolicies(configuration)
        let (loaded, diagnostics) = loadFactories(configuration, policies: policies, logger: logger, counters: counters, clock: clock)
        guard policyProblems.isEmpty, diagnostics.isEmpty else { throw Failure(diagnostics: policyProblems + diagnostics) }
        var stages: [PolicyPipeline.Stage] = []
        for (stage, factory, host) in loaded {
            do {
                let instance = try await factory.makeStage(settings: stage.settings, host: host)
                stages.append(.init(name: stage.use, stage: instance, timeout: stage.timeout, onError: stage.onError, mode: stage.mode))
            } catch {
                for s in stages { await s.stage.shutdown() }
                throw Failure(diagnostics: [PolicyDiagnostic(stage.location, "plugin '\(stage.use)' could not start: \(error)")])
            }
        }
        return PolicySetup(pipeline: PolicyPipeline(stages: stages, logger: logger, metrics: metrics), policies: policies)
    }
}

public struct PolicySetupSummary: Sendable {
    public var stages: [String]
    public var departments: [String]
}
