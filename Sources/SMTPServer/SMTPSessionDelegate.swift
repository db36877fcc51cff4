import SMTPCore

/// What a session needs from the application: decisions at each phase, credential
/// checks and durable storage. The session's single way out of the protocol layer.
public protocol SMTPSessionDelegate: Sendable {
    associatedtype Annotations: SessionAnnotations

    /// Whether `phase` needs a decision at all; when not, the session proceeds
    /// without leaving the event loop.
    func needsDecision(_ phase: SessionPhase) -> Bool
    /// Decides one phase.
    func decide(_ request: PolicyRequest<Annotations>) async -> SessionDecision<Annotations>
    /// Verifies AUTH credentials.
    func authenticate(_ credentials: SASLCredentials, _ request: PolicyRequest<Annotations>) async -> AuthResult<Annotations>
    /// Stores the message durably and returns its queue id, only once it is on disk
    /// (fsync'd). A thrown error is answered `451 4.3.0`.
    func store(_ request: StoreRequest<Annotations>) async throws -> String
    /// A session began with this delegate (its connection is up). Called once, from the
    /// event loop, before any other call for the session: do not block.
    func sessionOpened(sessionID: String)
    /// The session's connection has closed. Called once per session, from the event
    /// loop: do not block (start a task for anything slow).
    func sessionClosed(sessionID: String)
}

extension SMTPSessionDelegate {
    public func sessionOpened(sessionID: String) {}
    public func sessionClosed(sessionID: String) {}
}
