import CTLSShim
import Crypto
import NIOCore
import NIOSSL

extension TLSSessionFacts {
    /// The session `handler` negotiated. Call on the channel's event loop once the
    /// handshake has completed; nil before. What the TLS library will not say (the
    /// cipher, should a later swift-nio-ssl move its `SSL *`) is left empty, never guessed.
    static func read(from handler: NIOSSLHandler) -> TLSSessionFacts? {
        guard let version = handler.tlsVersion else { return nil }
        var cipher = ""
        var bits: Int?
        if let ssl = sslPointer(of: handler) {
            var name = [CChar](repeating: 0, count: 128)
            var strength: Int32 = 0
            if tollgate_current_cipher(ssl, &name, Int32(name.count), &strength) == 1 {
                cipher = String(cText: name)
                bits = Int(strength)
            }
        }
        return TLSSessionFacts(
            protocolVersion: version.openSSLName,
            cipher: cipher,
            cipherBits: bits,
            peerCertificate: handler.peerCertificate.flatMap(PeerCertificateFacts.init)
        )
    }

    /// The connection's `SSL *`. swift-nio-ssl keeps it private
    /// (`NIOSSLHandler.connection.ssl`), so it is found by reflection, as
    /// `NIOSSLContext.preferServerCipherOrder` finds the `SSL_CTX`.
    static func sslPointer(of handler: NIOSSLHandler) -> UnsafeMutableRawPointer? {
        guard let connection = Mirror(reflecting: handler).child("connection"),
            let ssl = Mirror(reflecting: connection).child("ssl") as? OpaquePointer
        else { return nil }
        return UnsafeMutableRawPointer(ssl)
    }
}

extension PeerCertificateFacts {
    /// Names and fingerprints of a certificate; nil if it cannot be read.
    init?(_ certificate: NIOSSLCertificate) {
        guard let der = try? certificate.toDERBytes(), let spki = try? certificate.extractPublicKey().toSPKIBytes() else { return nil }
        var subject = [CChar](repeating: 0, count: 256)
        var issuer = [CChar](repeating: 0, count: 256)
        let read = der.withUnsafeBufferPointer { bytes in
            tollgate_certificate_names(bytes.baseAddress, bytes.count, &subject, Int32(subject.count), &issuer, Int32(issuer.count))
        }
        guard read == 1 else { return nil }
        self.init(
            subject: String(cText: subject),
            issuer: String(cText: issuer),
            fingerprint: Self.fingerprint(der),
            publicKeyFingerprint: Self.fingerprint(spki)
        )
    }

    /// SHA-256 as upper-case hex pairs joined by colons (Postfix's fingerprint form).
    static func fingerprint(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        var text: [UInt8] = []
        for byte in SHA256.hash(data: bytes) {
            if !text.isEmpty { text.append(UInt8(ascii: ":")) }
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

extension TLSVersion {
    /// OpenSSL's name, as Postfix's `encryption_protocol` and milters' `{tls_version}` give it.
    var openSSLName: String {
        switch self {
        case .tlsv1: "TLSv1"
        case .tlsv11: "TLSv1.1"
        case .tlsv12: "TLSv1.2"
        case .tlsv13: "TLSv1.3"
        }
    }
}

extension Mirror {
    /// A stored property by name, looked up through the superclasses too (a
    /// `NIOSSLServerHandler`'s state is its superclass `NIOSSLHandler`'s).
    fileprivate func child(_ label: String) -> Any? {
        var mirror: Mirror? = self
        while let current = mirror {
            if let value = current.children.first(where: { $0.label == label })?.value { return value }
            mirror = current.superclassMirror
        }
        return nil
    }
}

extension String {
    /// A NUL-terminated C buffer's text (UTF-8, invalid bytes replaced).
    fileprivate init(cText buffer: [CChar]) {
        self.init(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
