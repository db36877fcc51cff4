/// Credentials from `AUTH PLAIN` or `AUTH LOGIN` (RFC 4616, draft-murchison-sasl-login).
public struct AuthCredentials: Sendable {
    /// The authentication identity (the login name).
    public var username: String
    /// The password. Never log it.
    public var password: String
    /// The mechanism the client used, upper-case (`PLAIN`, `LOGIN`).
    public var mechanism: String

    public init(username: String, password: String, mechanism: String) {
        self.username = username
        self.password = password
        self.mechanism = mechanism
    }
}

/// The answer of a stage that verifies credentials.
public enum AuthOutcome: Sendable {
    /// Not this stage's business: ask the next authenticating stage.
    case notHandled
    /// The credentials are good; `facts.user` should be the canonical user name.
    case success(SessionFacts)
    /// The credentials are wrong (`535 5.7.8`). The reason is logged, never sent.
    case failure(reason: String)
    /// The verifier could not decide (`454 4.7.0`): never treated as success.
    case temporaryFailure(reason: String)
}
