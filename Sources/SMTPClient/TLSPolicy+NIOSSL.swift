import NIOSSL
import SMTPCore

extension TLSConfiguration {
    /// Offers what `policy` allows: its minimum version and, for TLS 1.2 and earlier,
    /// its suites in its order. Used for the listeners and the upstream client alike.
    public mutating func apply(_ policy: TLSPolicy) {
        minimumTLSVersion =
            switch policy.minimumVersion {
            case .v1_0: .tlsv1
            case .v1_1: .tlsv11
            case .v1_2: .tlsv12
            case .v1_3: .tlsv13
            }
        // With TLS 1.3 only the list is never used; BoringSSL refuses an empty one.
        let suites = policy.minimumVersion == .v1_3 || policy.suites.isEmpty ? TLSPolicy.intermediateSuites : policy.suites
        cipherSuiteValues = suites.map { NIOTLSCipher(rawValue: $0.code) }
    }
}
