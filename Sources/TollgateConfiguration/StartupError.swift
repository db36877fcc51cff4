/// Something `tollgate serve` cannot start without: a certificate, a password file,
/// the spool. The text says which file and why.
public struct StartupError: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
