import Logging
import TollgatePolicy

/// Loads the plugins named in `stages:` and builds the pipeline from them.
public enum PipelineBuilder {
    /// Locates and loads every stage's plugin and validates its settings. Problems are
    /// returned located (`FILE:LINE:COLUMN: message`), never thrown past the caller.
    public static func loadFactories(_ configuration: TollgateConfiguration, host: any PolicyHost) -> ([(TollgateConfiguration.Stage, any PolicyStageFactory)], [PolicyDiagnostic]) {
        var loaded: [(TollgateConfiguration.Stage, any PolicyStageFactory)] = []
        var diagnostics: [PolicyDiagnostic] = []
        let searchPath = PluginLoader.searchPath(configured: configuration.plugins.path)
        for stage in configuration.stages {
            guard let path = stage.library ?? PluginLoader.locate(stage.use, searchPath: searchPath) else {
                let tried = PluginLoader.candidateNames(stage.use).joined(separator: ", ")
                diagnostics.append(PolicyDiagnostic(stage.location, "plugin '\(stage.use)' not found (looked for \(tried) in \(searchPath.joined(separator: ", ")))"))
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
            let problems = factory.validate(settings: stage.settings, host: host)
            diagnostics += problems
            if problems.isEmpty { loaded.append((stage, factory)) }
        }
        return (loaded, diagnostics)
    }

    public struct Failure: Error, CustomStringConvertible {
        public var diagnostics: [PolicyDiagnostic]
        public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
    }

    /// Builds a ready pipeline, or fails with every problem found.
    public static func build(_ configuration: TollgateConfiguration, host: any PolicyHost, logger: Logger, metrics: RelayMetrics?) async throws -> PolicyPipeline {
        let (loaded, diagnostics) = loadFactories(configuration, host: host)
        guard diagnostics.isEmpty else { throw Failure(diagnostics: diagnostics) }
        var stages: [PolicyPipeline.Stage] = []
        for (stage, factory) in loaded {
            do {
                let instance = try await factory.makeStage(settings: stage.settings, host: host)
                stages.append(.init(name: stage.use, stage: instance, timeout: stage.timeout, onError: stage.onError))
            } catch {
                for s in stages { await s.stage.shutdown() }
                throw Failure(diagnostics: [PolicyDiagnostic(stage.location, "plugin '\(stage.use)' could not start: \(error)")])
            }
        }
        return PolicyPipeline(stages: stages, logger: logger, metrics: metrics)
    }
}
