#include "CTLSShim.h"
#include <stddef.h>
#include <string.h>

// BoringSSL's own declarations (ssl.h, x509.h) with opaque pointers: this file does not
// include swift-nio-ssl's headers, and a renamed function fails the link, never silently.
const void *CNIOBoringSSL_SSL_get_current_cipher(const void *ssl);
const char *CNIOBoringSSL_SSL_CIPHER_get_name(const void *cipher);
int CNIOBoringSSL_SSL_CIPHER_get_bits(const void *cipher, int *out_alg_bits);
void *CNIOBoringSSL_d2i_X509(void **out, const uint8_t **inp, long len);
void CNIOBoringSSL_X509_free(void *x509);
void *CNIOBoringSSL_X509_get_subject_name(const void *x509);
void *CNIOBoringSSL_X509_get_issuer_name(const void *x509);
int CNIOBoringSSL_X509_NAME_get_text_by_NID(const void *name, int nid, char *buf, int len);

// BoringSSL's nid.h: #define NID_commonName 13
static const int tollgate_nid_common_name = 13;

int tollgate_current_cipher(void *ssl, char *name, int size, int *bits) {
    if (ssl == NULL || name == NULL || size <= 0) return 0;
    const void *cipher = CNIOBoringSSL_SSL_get_current_cipher(ssl);
    if (cipher == NULL) return 0;
    const char *text = CNIOBoringSSL_SSL_CIPHER_get_name(cipher);
    if (text == NULL) return 0;
    strncpy(name, text, (size_t)size - 1);
    name[size - 1] = 0;
    if (bits != NULL) *bits = CNIOBoringSSL_SSL_CIPHER_get_bits(cipher, NULL);
    return 1;
}

static void tollgate_common_name(const void *name, char *out, int size) {
    out[0] = 0;
    if (name == NULL) return;
    if (CNIOBoringSSL_X509_NAME_get_text_by_NID(name, tollgate_nid_common_name, out, size) < 0) out[0] = 0;
}

int tollgate_certificate_names(const uint8_t *der, long length, char *subject, int subject_size, char *issuer, int issuer_size) {
    if (der == NULL || length <= 0 || subject == NULL || issuer == NULL || subject_size <= 0 || issuer_size <= 0) return 0;
    const uint8_t *cursor = der;
    void *x509 = CNIOBoringSSL_d2i_X509(NULL, &cursor, length);
    if (x509 == NULL) return 0;
    tollgate_common_name(CNIOBoringSSL_X509_get_subject_name(x509), subject, subject_size);
    tollgate_common_name(CNIOBoringSSL_X509_get_issuer_name(x509), issuer, issuer_size);
    CNIOBoringSSL_X509_free(x509);
    return 1;
}
