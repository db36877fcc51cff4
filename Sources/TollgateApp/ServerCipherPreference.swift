import CTLSShim
import NIOSSL

extension NIOSSLContext {
    /// Makes the server choose the suite by its own order (the policy's, strongest
    /// first) rather than the client's, as testssl and administrators expect.
    ///
    /// swift-nio-ssl has no setting for this, so the context's `SSL_CTX` is found by
    /// reflection and BoringSSL's `SSL_CTX_set_options` is called on it (see
    /// `CTLSShim.h`). Returns false, changing nothing, if a later swift-nio-ssl keeps
    /// the `SSL_CTX` elsewhere; the caller logs that and serves with client order.
    func preferServerCipherOrder() -> Bool {
        guard let pointer = Mirror(reflecting: self).children.first(where: { $0.label == "sslContext" })?.value as? OpaquePointer else {
            return false
        }
        _ = tollgate_prefer_server_ciphers(UnsafeMutableRawPointer(pointer))
        return true
    }
}
