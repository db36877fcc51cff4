/// The points of a session where the application decides, named as in the
/// configuration: every command goes check → decision → proceed.
public enum SessionPhase: String, Sendable, Hashable, CaseIterable {
    case connect, helo, starttls, auth, mail, rcpt, data
}

/// What the application layer attaches to a session as it goes — in Tollgate, the
/// facts policy stages found and their decision trace. The state machine keeps
/// each piece in the scope it was learnt in (the connection, the session since the
/// last STARTTLS, the transaction) and drops it when RFC 5321 and RFC 3207 say so.
public protocol SessionAnnotations: Sendable {
    init()
    /// Adds what `other` says; later values win.
    mutating func merge(_ other: Self)
    /// What to keep of a decision that refused its command — the record of it, not
    /// what it found (a refused AUTH must not leave its user behind). By default, all.
    func keptOnRefusal() -> Self
}

extension SessionAnnotations {
    public func keptOnRefusal() -> Self { self }
}
