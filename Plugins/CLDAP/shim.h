// The parts of OpenLDAP's C API that Swift uses, plus small wrappers for the
// macros Swift cannot import (pointer-valued and cast macros).
#ifndef TOLLGATE_CLDAP_SHIM_H
#define TOLLGATE_CLDAP_SHIM_H

#define LDAP_DEPRECATED 0
#include <ldap.h>
#include <lber.h>
#include <sys/time.h>

/// `LDAP_OPT_ON`: the address of a libldap global, not importable as a macro.
static inline void *_Nonnull cldap_opt_on(void) { return LDAP_OPT_ON; }

/// `LDAP_OPT_OFF`: a null pointer.
static inline void *_Nullable cldap_opt_off(void) { return LDAP_OPT_OFF; }

/// `LDAP_SASL_SIMPLE`: the mechanism argument of `ldap_sasl_bind_s` for a simple bind.
static inline const char *_Nullable cldap_sasl_simple(void) { return LDAP_SASL_SIMPLE; }

/// `LDAP_SCOPE_SUBTREE` is a cast macro.
static inline int cldap_scope_subtree(void) { return LDAP_SCOPE_SUBTREE; }

#endif
