#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOSSL

/// A failed TLS handshake as one sentence an administrator understands, on either side
/// of the relay: the upstream's (``Peer/upstream(_:)``: the SMTP client's reply, log and
/// bounce) and the submitting client's (``Peer/client``: the session log). Never a
/// library's type names, its error stack or a build path:
/// `handshakeFailed(NIOSSL.BoringSSLError.sslError([… at /…/handshake.cc:320]))` becomes
/// `certificate verification failed: untrusted issuer` or `client does not speak TLS
/// (wrong version number)`.
public enum TLSFailureText {
    /// Who the relay was talking to.
    public enum Peer: Sendable, Equatable {
        /// An upstream, by the name or address connected to (for host-name mismatches).
        case upstream(String)
        /// A client of one of the relay's listeners.
        case client

        var word: String {
            switch self {
            case .upstream: "upstream"
            case .client: "client"
            }
        }
    }

    /// Why the handshake with `peer` failed. `certificate` says what the chain check saw
    /// of the peer's certificate, when the relay checked one (expired, self-signed, …).
    public static func describe(_ error: any Error, peer: Peer, certificate: String?) -> String {
        if let error = error as? NIOSSLExtraError {
            if case .upstream(let name) = peer {
                if error == .failedToValidateHostname { return "hostname \(name) not in certificate" }
                if error == .serverHostnameImpossibleToMatch || error == .invalidSNIHostname || error == .cannotUseIPAddressInSNI {
                    return "hostname \(name) cannot be checked against a certificate"
                }
            }
            return "TLS set-up failed"
        }
        if let error = error as? NIOSSLError {
            switch error {
            case .handshakeFailed(let boring): return describe(boring, peer: peer, certificate: certificate)
            case .uncleanShutdown: return "\(peer.word) closed the connection during the TLS handshake"
            case .shutdownFailed: return "TLS shutdown failed"
            case .failedToLoadCertificate, .failedToLoadPrivateKey, .noSuchFilesystemObject:
                return "cannot load the TLS certificate files"
            default: return "TLS handshake failed"
            }
        }
        if let error = error as? BoringSSLError { return describe(error, peer: peer, certificate: certificate) }
        if let error = error as? IOError {
            return "connection error during the TLS handshake: \(errnoText(error.errnoCode))"
        }
        if let error = error as? ChannelError, error == .eof || error == .ioOnClosedChannel {
            return "\(peer.word) closed the connection during the TLS handshake"
        }
        return "TLS handshake failed"
    }

    static func describe(_ error: BoringSSLError, peer: Peer, certificate: String?) -> String {
        switch error {
        case .sslError(let stack), .unknownError(let stack):
            if stack.contains(.eofDuringHandshake) { return "\(peer.word) closed the connection during the TLS handshake" }
            let reasons = stack.compactMap(reasonCode)
            for reason in reasons {
                if let text = sentence(reason, peer: peer, certificate: certificate) { return text }
            }
            if let reason = reasons.first { return "TLS handshake failed: " + reason.lowercased().replacing("_", with: " ") }
            return "TLS handshake failed"
        case .zeroReturn: return "\(peer.word) closed the connection during the TLS handshake"
        case .syscallError: return "connection lost during the TLS handshake"
        case .invalidSNIName: return peer == .client ? "the client sent a TLS server name that is not valid" : "the upstream's name cannot be sent as TLS server name"
        default: return "TLS handshake failed"
        }
    }

    /// BoringSSL reason codes (`ssl/internal.h`, `include/openssl/ssl.h`) in words; an
    /// alert's reason is what the peer said of us, the others what we found of it.
    public static func sentence(_ reason: String, peer: Peer, certificate: String?) -> String? {
        let who = peer.word
        switch reason {
        case "CERTIFICATE_VERIFY_FAILED":
            return (peer == .client ? "client certificate verification failed: " : "certificate verification failed: ") + (certificate ?? "untrusted issuer")
        case "WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "UNEXPECTED_RECORD":
            return "\(who) does not speak TLS (wrong version number)"
        case "UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "PROTOCOL_VERSION":
            return "no TLS protocol version in common (TLS 1.2 or later is required)"
        case "NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE", "SSLV3_ALERT_HANDSHAKE_FAILURE", "TLSV1_ALERT_INSUFFICIENT_SECURITY":
            return peer == .client ? "no cipher suite in common with the client" : "upstream refused the TLS handshake: no cipher suite in common"
        case "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN", "TLSV1_ALERT_ACCESS_DENIED",
            "TLSV1_CERTIFICATE_REQUIRED":
            return peer == .client
                ? "client refused the TLS handshake: it did not accept the relay's certificate"
                : "upstream refused the TLS handshake: it did not accept the client certificate"
        case "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return "\(who) sent no certificate, and one is required"
        case "SSLV3_ALERT_CERTIFICATE_EXPIRED":
            return peer == .client ? "client refused the TLS handshake: the relay's certificate has expired" : "upstream refused the TLS handshake: certificate expired"
        case "TLSV1_ALERT_INTERNAL_ERROR": return "\(who) reported an internal TLS error"
        case "TLSV1_UNRECOGNIZED_NAME": return "\(who) does not know the TLS server name"
        case "DECODE_ERROR", "TLSV1_ALERT_DECODE_ERROR", "SSLV3_ALERT_ILLEGAL_PARAMETER", "EXCESSIVE_MESSAGE_SIZE":
            return "malformed TLS message from \(who)"
        default: return nil
        }
    }

    /// `CERTIFICATE_VERIFY_FAILED` from BoringSSL's
    /// `error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at FILE:LINE`.
    public static func reasonCode(_ error: BoringSSLInternalError) -> String? {
        let text = error.description
        guard let start = text.firstRange(of: "error:") else { return nil }
        var message = text[start.upperBound...]
        if let at = message.firstRange(of: " at ") { message = message[..<at.lowerBound] }
        guard let last = message.split(separator: ":").last, !last.isEmpty,
            last.allSatisfy({ $0.isUppercase || $0.isNumber || $0 == "_" })
        else { return nil }
        return String(last)
    }

    /// `strerror`, lower-cased: `connection reset by peer`.
    public static func errnoText(_ code: CInt) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text).lowercased()
    }
}
