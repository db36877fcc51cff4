// The parts of OpenLDAP's C API that Swift uses, plus small wrappers for the
// macros Swift cannot import (pointer-valued and cast macros).
#ifndef TOLLGATE_CLDAP_SHIM_H
#define TOLLGATE_CLDAP_SHIM_H

#define LDAP_DEPRECATED 0
#include <ldap.h>
#include <lber.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <pthread.h>

/// `LDAP_OPT_ON`: the address of a libldap global, not importable as a macro.
static inline void *_Nonnull cldap_opt_on(void) { return LDAP_OPT_ON; }

/// `LDAP_OPT_OFF`: a null pointer.
static inline void *_Nullable cldap_opt_off(void) { return LDAP_OPT_OFF; }

/// `LDAP_SASL_SIMPLE`: the mechanism argument of `ldap_sasl_bind_s` for a simple bind.
static inline const char *_Nullable cldap_sasl_simple(void) { return LDAP_SASL_SIMPLE; }

/// `LDAP_SCOPE_SUBTREE` is a cast macro.
static inline int cldap_scope_subtree(void) { return LDAP_SCOPE_SUBTREE; }

/// Names the calling thread (at most 15 bytes), for debuggers and `top -H`.
/// glibc declares pthread_setname_np only under _GNU_SOURCE.
extern int pthread_setname_np(pthread_t thread, const char *name);
static inline void cldap_set_thread_name(const char *_Nonnull name) {
    (void)pthread_setname_np(pthread_self(), name);
}

/// Tracks the socket of one LDAP handle (through libldap's connection
/// callbacks) so that another thread can cut it with shutdown(2): the way out of
/// a libldap call that does not honour its timeouts (seen: an ldaps:// TLS
/// handshake with an unresponsive server spins forever in GnuTLS).
///
/// The mutex makes "connection closed" and "cut the socket" mutually exclusive,
/// so a descriptor is never shut down after libldap has closed it (and the number
/// may have been reused).
typedef struct cldap_socket_watch {
    ldap_conncb callbacks;
    pthread_mutex_t mutex;
    int fd;
} cldap_socket_watch;

static inline int cldap_socket_watch_add(LDAP *ld, Sockbuf *sb, LDAPURLDesc *srv, struct sockaddr *addr,
                                         struct ldap_conncb *ctx) {
    (void)ld; (void)srv; (void)addr;
    cldap_socket_watch *watch = (cldap_socket_watch *)ctx->lc_arg;
    ber_socket_t fd = -1;
    if (sb != NULL && ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &fd) == 1) {
        pthread_mutex_lock(&watch->mutex);
        watch->fd = fd;
        pthread_mutex_unlock(&watch->mutex);
    }
    return 0;
}

static inline void cldap_socket_watch_del(LDAP *ld, Sockbuf *sb, struct ldap_conncb *ctx) {
    (void)ld; (void)sb;
    cldap_socket_watch *watch = (cldap_socket_watch *)ctx->lc_arg;
    pthread_mutex_lock(&watch->mutex);
    watch->fd = -1;
    pthread_mutex_unlock(&watch->mutex);
}

static inline void cldap_socket_watch_init(cldap_socket_watch *watch) {
    watch->callbacks.lc_add = cldap_socket_watch_add;
    watch->callbacks.lc_del = cldap_socket_watch_del;
    watch->callbacks.lc_arg = watch;
    watch->fd = -1;
    pthread_mutex_init(&watch->mutex, NULL);
}

static inline void cldap_socket_watch_destroy(cldap_socket_watch *watch) {
    pthread_mutex_destroy(&watch->mutex);
}

/// Registers the watch on `ld`; it must outlive the handle.
static inline int cldap_socket_watch_install(LDAP *ld, cldap_socket_watch *watch) {
    return ldap_set_option(ld, LDAP_OPT_CONNECT_CB, &watch->callbacks);
}

/// Shuts the handle's socket down, if it has one; returns whether it did.
static inline int cldap_socket_watch_interrupt(cldap_socket_watch *watch) {
    int done = 0;
    pthread_mutex_lock(&watch->mutex);
    if (watch->fd >= 0) {
        done = shutdown(watch->fd, SHUT_RDWR) == 0;
    }
    pthread_mutex_unlock(&watch->mutex);
    return done;
}

#endif
