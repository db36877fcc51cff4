import NIOCore
import NIOPosix
import NIOSSL
import TLSFailureText
import Testing

@testable import SMTPClient

/// The sentences for errors the live tests cannot easily provoke (issue 7): every one
/// names what failed and where, and none carries library text.
@Suite struct UpstreamFailureTextTests {
    @Test func connectErrors() {
        let cases: [(any Error, String)] = [
            (ChannelError.connectTimeout(.seconds(30)), "connection to mx.example:25 timed out after 30 s"),
            (ChannelError.connectTimeout(.milliseconds(1500)), "connection to mx.example:25 timed out after 1500 ms"),
            (IOError(errnoCode: ECONNREFUSED, reason: "connect"), "connection refused by mx.example:25"),
            (IOError(errnoCode: ETIMEDOUT, reason: "connect"), "connection to mx.example:25 timed out"),
            (IOError(errnoCode: EHOSTUNREACH, reason: "connect"), "host mx.example is unreachable"),
            (IOError(errnoCode: ENETUNREACH, reason: "connect"), "network unreachable for mx.example"),
            (IOError(errnoCode: ECONNRESET, reason: "connect"), "connection reset by mx.example:25"),
            (IOError(errnoCode: EACCES, reason: "connect"), "cannot connect to mx.example:25: permission denied"),
            (SocketAddressError.unknown(host: "mx.example", port: 25), "cannot resolve host name mx.example"),
        ]
        for (error, sentence) in cases {
            #expect(UpstreamFailureText.connect(error, host: "mx.example", port: 25) == sentence)
        }
    }

    @Test func tlsErrors() {
        let cases: [(any Error, String)] = [
            (NIOSSLError.uncleanShutdown, "upstream closed the connection during the TLS handshake"),
            (NIOSSLError.handshakeFailed(.sslError([.eofDuringHandshake])), "upstream closed the connection during the TLS handshake"),
            (NIOSSLError.handshakeFailed(.syscallError), "connection lost during the TLS handshake"),
            (NIOSSLExtraError.failedToValidateHostname, "hostname mx.example not in certificate"),
            (IOError(errnoCode: ECONNRESET, reason: "read"), "connection error during the TLS handshake: connection reset by peer"),
        ]
        for (error, sentence) in cases {
            #expect(UpstreamFailureText.tls(error, peer: "mx.example", certificate: nil) == sentence)
        }
    }

    @Test func reasonCodesInWords() {
        #expect(UpstreamFailureText.sentence("TLSV1_ALERT_PROTOCOL_VERSION", nil) == "no TLS protocol version in common (TLS 1.2 or later is required)")
        #expect(UpstreamFailureText.sentence("NO_SHARED_CIPHER", nil) == "upstream refused the TLS handshake: no cipher suite in common")
        #expect(UpstreamFailureText.sentence("CERTIFICATE_VERIFY_FAILED", nil) == "certificate verification failed: untrusted issuer")
        let notYet = PeerCertificateCheck.Problem(notBefore: 2_000_000_000, notAfter: 2_100_000_000, selfSigned: false, now: 1_900_000_000)
        #expect(UpstreamFailureText.sentence("CERTIFICATE_VERIFY_FAILED", notYet) == "certificate verification failed: certificate not valid before 2033-05-18 03:33 UTC")
        #expect(UpstreamFailureText.sentence("SOMETHING_ELSE", nil) == nil)
    }

    /// The listeners' side: the same failures, said of the client (the session's
    /// `TLS handshake failed` log line).
    @Test func aClientsHandshakeInWords() {
        let cases: [(any Error, String)] = [
            (NIOSSLError.handshakeFailed(.sslError([.eofDuringHandshake])), "client closed the connection during the TLS handshake"),
            (ChannelError.eof, "client closed the connection during the TLS handshake"),
            (NIOSSLError.handshakeFailed(.syscallError), "connection lost during the TLS handshake"),
            (IOError(errnoCode: ECONNRESET, reason: "read"), "connection error during the TLS handshake: connection reset by peer"),
            (NIOSSLExtraError.failedToValidateHostname, "TLS set-up failed"),
        ]
        for (error, sentence) in cases {
            #expect(TLSFailureText.describe(error, peer: .client, certificate: nil) == sentence)
        }
        #expect(TLSFailureText.sentence("WRONG_VERSION_NUMBER", peer: .client, certificate: nil) == "client does not speak TLS (wrong version number)")
        #expect(TLSFailureText.sentence("HTTP_REQUEST", peer: .client, certificate: nil) == "client does not speak TLS (wrong version number)")
        #expect(TLSFailureText.sentence("NO_SHARED_CIPHER", peer: .client, certificate: nil) == "no cipher suite in common with the client")
        #expect(TLSFailureText.sentence("TLSV1_ALERT_UNKNOWN_CA", peer: .client, certificate: nil) == "client refused the TLS handshake: it did not accept the relay's certificate")
        #expect(TLSFailureText.sentence("CERTIFICATE_VERIFY_FAILED", peer: .client, certificate: "self-signed certificate") == "client certificate verification failed: self-signed certificate")
        #expect(TLSFailureText.sentence("PEER_DID_NOT_RETURN_A_CERTIFICATE", peer: .client, certificate: nil) == "client sent no certificate, and one is required")
    }
}
