#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

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
        if let error = error as? NIOSSLExtraError {
            if error == .failedToValidateHostname { return "hostname \(peer) not in certificate" }
            if error == .serverHostnameImpossibleToMatch || error == .invalidSNIHostname || error == .cannotUseIPAddressInSNI {
                return "hostname \(peer) cannot be checked against a certificate"
            }
            return "TLS set-up failed"
        }
        if let error = error as? NIOSSLError {
            switch error {
            case .handshakeFailed(let boring): return tls(boring, certificate)
            case .uncleanShutdown: return "upstream closed the connection during the TLS handshake"
            case .shutdownFailed: return "TLS shutdown failed"
            case .failedToLoadCertificate, .failedToLoadPrivateKey, .noSuchFilesystemObject:
                return "cannot load the TLS certificate files"
            default: return "TLS handshake failed"
            }
        }
        if let error = error as? BoringSSLError { return tls(error, certificate) }
        if let error = error as? IOError {
            return "connection error during the TLS handshake: \(errnoText(error.errnoCode))"
        }
        return "TLS handshake failed"
    }

    static func tls(_ error: BoringSSLError, _ certificate: PeerCertificateCheck.Problem?) -> String {
        switch error {
        case .sslError(let stack), .unknownError(let stack):
            if stack.contains(.eofDuringHandshake) { return "upstream closed the connection during the TLS handshake" }
            for reason in stack.compactMap(reasonCode) {
                if let text = sentence(reason, certificate) { return text }
            }
            if let reason = stack.compactMap(reasonCode).first {
                return "TLS handshake failed: " + reason.lowercased().replacing("_", with: " ")
            }
            return "TLS handshake failed"
        case .zeroReturn: return "upstream closed the connection during the TLS handshake"
        case .syscallError: return "connection lost during the TLS handshake"
        case .invalidSNIName: return "the upstream's name cannot be sent as TLS server name"
        default: return "TLS handshake failed"
        }
    }

    /// BoringSSL reason codes (`ssl/internal.h`, `include/openssl/ssl.h`) in words.
    static func sentence(_ reason: String, _ certificate: PeerCertificateCheck.Problem?) -> String? {
        switch reason {
        case "CERTIFICATE_VERIFY_FAILED":
            return "certificate verification failed: " + (certificate?.description ?? "untrusted issuer")
        case "WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNEXPECTED_RECORD":
            return "upstream does not speak TLS (wrong version number)"
        case "UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "PROTOCOL_VERSION":
            return "no TLS protocol version in common (TLS 1.2 or later is required)"
        case "NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE", "SSLV3_ALERT_HANDSHAKE_FAILURE", "TLSV1_ALERT_INSUFFICIENT_SECURITY":
            return "upstream refused the TLS handshake: no cipher suite in common"
        case "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN", "TLSV1_ALERT_ACCESS_DENIED",
            "TLSV1_CERTIFICATE_REQUIRED":
            return "upstream refused the TLS handshake: it did not accept the client certificate"
        case "SSLV3_ALERT_CERTIFICATE_EXPIRED": return "upstream refused the TLS handshake: certificate expired"
        case "TLSV1_ALERT_INTERNAL_ERROR": return "upstream reported an internal TLS error"
        case "TLSV1_UNRECOGNIZED_NAME": return "upstream does not know the TLS server name"
        case "DECODE_ERROR", "TLSV1_ALERT_DECODE_ERROR", "SSLV3_ALERT_ILLEGAL_PARAMETER", "EXCESSIVE_MESSAGE_SIZE":
            return "malformed TLS message from upstream"
        default: return nil
        }
    }

    /// `CERTIFICATE_VERIFY_FAILED` from BoringSSL's
    /// `error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at FILE:LINE`.
    static func reasonCode(_ error: BoringSSLInternalError) -> String? {
        let text = error.description
        guard let start = text.firstRange(of: "error:") else { return nil }
        var message = text[start.upperBound...]
        if let at = message.firstRange(of: " at ") { message = message[..<at.lowerBound] }
        guard let last = message.split(separator: ":").last, !last.isEmpty,
            last.allSatisfy({ $0.isUppercase || $0.isNumber || $0 == "_" })
        else { return nil }
        return String(last)
    }

    static func errnoText(_ code: CInt) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text).lowercased()
    }

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
