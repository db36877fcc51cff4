import NIOCore
import NIOPosix
import TollgatePolicy

/// Makes `milter` stages.
public final class MilterFactory: PolicyStageFactory {
    public let name = "milter"
    public init() {}

    public func validate(settings: PolicySettings, host: any PolicyHost) -> [PolicyDiagnostic] {
        MilterSettings.parse(settings).1
    }

    public func makeStage(settings: PolicySettings, host: any PolicyHost) async throws -> any PolicyStage {
        let (parsed, diagnostics) = MilterSettings.parse(settings)
        guard let parsed else { throw MilterSettingsError(diagnostics: diagnostics) }
        return MilterStage(settings: parsed, host: host)
    }
}

public struct MilterSettingsError: Error, CustomStringConvertible {
    public var diagnostics: [PolicyDiagnostic]
    public var description: String { diagnostics.map { "\($0)" }.joined(separator: "; ") }
}

/// A client of one milter. Each SMTP session gets its own connection to the milter,
/// opened at its first phase and closed with QUIT when the session ends
/// (``sessionClosed(sessionID:)``), so N concurrent sessions hold N connections.
public final class MilterStage: PolicyStage {
    public let settings: MilterSettings
    let host: (any PolicyHost)?
    /// The plugin's own event loop (the relay's NIO is not shared across the library boundary).
    let group: MultiThreadedEventLoopGroup
    private let sessions = SessionTable()

    public init(settings: MilterSettings, host: (any PolicyHost)? = nil) {
        self.settings = settings
        self.host = host
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    public var phases: Set<PolicyPhase> { [.connect, .helo, .mail, .rcpt, .data] }

    public func evaluate(_ context: PolicyContext) async throws -> PolicyDecision {
        if context.dryRun { return PolicyDecision(.continue, reason: "milter not consulted in a dry run") }
        let session = await sessions.session(context.sessionID, settings: settings, group: group)
        do {
            return try await session.evaluate(context)
        } catch {
            host?.log(.warning, "milter failed", metadata: ["milter.server": "\(settings.server)", "milter.error": "\(error)", "session": context.sessionID])
            throw error
        }
    }

    public func sessionClosed(sessionID: String) async {
        if let session = await sessions.remove(sessionID) { await session.close() }
    }

    /// How many sessions hold a connection to the milter now.
    public func openSessions() async -> Int { await sessions.count }

    public func shutdown() async {
        for session in await sessions.removeAll() { await session.close() }
        try? await group.shutdownGracefully()
    }
}

actor SessionTable {
    private var sessions: [String: MilterSession] = [:]

    func session(_ id: String, settings: MilterSettings, group: EventLoopGroup) -> MilterSession {
        if let s = sessions[id] { return s }
        let s = MilterSession(settings: settings, group: group)
        sessions[id] = s
        return s
    }

    func remove(_ id: String) -> MilterSession? { sessions.removeValue(forKey: id) }

    func removeAll() -> [MilterSession] {
        defer { sessions = [:] }
        return Array(sessions.values)
    }

    var count: Int { sessions.count }
}
