#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import TLSFailureText

/// Transport and TLS errors as one sentence an administrator understands, for the
/// stored reply, the log and the bounce: never a library's type names, its error stack
/// or a build path (`handshakeFailed(NIOSSL.BoringSSLError.sslError([… at /…/handshake.cc:320]))`
/// becomes `certificate verification failed: untrusted issuer`).
enum UpstreamFailureText {
    /// Why a TCP connection to `host:port` could not be made.
    static func connect(_ error: any Error, host: String, port: Int) -> String {
        let target = "\(host):\(port)"
        if let error = error as? NIOConnectionError {
            if let first = error.connectionErrors.first { return connect(first.error, host: host, port: port) }
            if error.dnsAError != nil || error.dnsAAAAError != nil { return "cannot resolve host name \(host)" }
            return "cannot connect to \(target)"
        }
        if let error = error as? ChannelError, case .connectTimeout(let limit) = error {
            return "connection to \(target) timed out after \(seconds(limit))"
        }
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: return "connection refused by \(target)"
            case ETIMEDOUT: return "connection to \(target) timed out"
            case EHOSTUNREACH: return "host \(host) is unreachable"
            case ENETUNREACH: return "network unreachable for \(host)"
            case ECONNRESET: return "connection reset by \(target)"
            default: return "cannot connect to \(target): \(errnoText(error.errnoCode))"
            }
        }
        if error is SocketAddressError { return "cannot resolve host name \(host)" }
        return "cannot connect to \(target)"
    }

    /// Why the TLS handshake with `peer` (the name or address connected to) failed.
    /// `certificate` is what the chain check saw (``PeerCertificateCheck``).
    static func tls(_ error: any Error, peer: String, certificate: PeerCertificateCheck.Problem?) -> String {
        TLSFailureText.describe(error, peer: .upstream(peer), certificate: certificate?.description)
    }

    /// A BoringSSL reason code in words (``TLSFailureText/sentence(_:peer:certificate:)``).
    static func sentence(_ reason: String, _ certificate: PeerCertificateCheck.Problem?) -> String? {
        TLSFailureText.sentence(reason, peer: .upstream(""), certificate: certificate?.description)
    }

    static func errnoText(_ code: CInt) -> String { TLSFailureText.errnoText(code) }

    static func seconds(_ time: TimeAmount) -> String {
        let ms = time.nanoseconds / 1_000_000
        return ms % 1000 == 0 ? "\(ms / 1000) s" : "\(ms) ms"
    }
}

/// Watches BoringSSL's chain check (its per-certificate callback, passing every verdict
/// through unchanged) to say *why* a certificate failed: expired, not yet valid,
/// self-signed or an issuer nobody trusts. BoringSSL's error stack only says
/// `CERTIFICATE_VERIFY_FAILED`.
final class PeerCertificateCheck: Sendable {
    struct Problem: Sendable, CustomStringConvertible {
        var notBefore: Int
        var notAfter: Int
        var selfSigned: Bool
        var now: Int

        var description: String {
            if now > notAfter { return "certificate expired on \(Self.date(notAfter))" }
            if now < notBefore { return "certificate not valid before \(Self.date(notBefore))" }
            return selfSigned ? "self-signed certificate" : "untrusted issuer"
        }

        static func date(_ t: Int) -> String {
            var time = time_t(t)
            var parts = tm()
            gmtime_r(&time, &parts)
            func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
            return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) \(two(parts.tm_hour)):\(two(parts.tm_min)) UTC"
        }
    }

    private let first = NIOLockedValueBox<Problem?>(nil)

    var problem: Problem? { first.withLockedValue { $0 } }

    /// The callback for `NIOSSLClientHandler`: records the first failing certificate.
    var callback: NIOSSLVerificationCallback {
        { [first] result, certificate in
            if result == .failed {
                let problem = Problem(
                    notBefore: Int(certificate.notValidBefore), notAfter: Int(certificate.notValidAfter),
                    selfSigned: certificate.subjectName == certificate.issuerName, now: Int(time(nil))
                )
                first.withLockedValue { if $0 == nil { $0 = problem } }
            }
            return result
        }
    }
}
