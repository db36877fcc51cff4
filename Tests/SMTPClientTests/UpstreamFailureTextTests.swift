import NIOCore
import NIOPosix
import NIOSSL
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
}
