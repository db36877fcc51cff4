#ifndef TOLLGATE_CTLSSHIM_H
#define TOLLGATE_CTLSSHIM_H
#include <stdint.h>

// swift-nio-ssl 2.x has no setting for the server's cipher preference
// (SSL_OP_CIPHER_SERVER_PREFERENCE). Its copy of BoringSSL, linked into this
// binary with the CNIOBoringSSL_ prefix, has; this declares that one function.
// A rename upstream fails the link, never silently.
uint32_t CNIOBoringSSL_SSL_CTX_set_options(void *ctx, uint32_t options);

// BoringSSL's ssl.h: #define SSL_OP_CIPHER_SERVER_PREFERENCE 0x00400000L
static inline uint32_t tollgate_prefer_server_ciphers(void *ssl_ctx) {
    return CNIOBoringSSL_SSL_CTX_set_options(ssl_ctx, 0x00400000u);
}

// What the SMTP server tells its stages of a TLS session (Postfix's encryption_* and
// ccert_* attributes): swift-nio-ssl exposes the protocol version and the peer's
// certificate, not the cipher or the certificate's names. These read them from the
// same BoringSSL; each returns 0 when it cannot, so the caller reports nothing.

// The negotiated suite's OpenSSL name (NUL-terminated, truncated to `size`) and its
// strength in bits. `ssl` is the connection's `SSL *`.
int tollgate_current_cipher(void *ssl, char *name, int size, int *bits);

// The common names of a DER certificate's subject and issuer (each NUL-terminated,
// empty if the name has no CN).
int tollgate_certificate_names(const uint8_t *der, long length, char *subject, int subject_size, char *issuer, int issuer_size);
#endif
