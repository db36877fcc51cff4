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
#endif
