/* A library that claims to be a Tollgate plugin built against a future ABI.
   The loader must refuse it from the handshake alone, before touching any
   Swift type. */
#include <stdint.h>

void tollgate_plugin_handshake(void *out) {
    uint32_t *magic = (uint32_t *)out;
    int32_t *versions = (int32_t *)out;
    magic[0] = 0x544F4C4Cu;
    versions[1] = 999;   /* ABI version */
    versions[2] = 60301; /* compiler */
}

void *tollgate_plugin_create(void) {
    return (void *)0; /* never called */
}
