// The two C entry points of the `ldap` plugin library (libtollgate-ldap.so).
// Kept in their own module so that tests can link the stage's code without
// these symbols (every plugin exports the same two names).
import LDAPStage
import TollgatePolicy

/// Writes the plugin's ``TollgatePluginHandshake`` (the API and compiler versions
/// it was built with) into the relay's buffer.
///
/// C: `void tollgate_plugin_handshake(void *out)`. A Swift struct cannot be the
/// result of a `@_cdecl` function, so the handshake is written through a pointer.
@_cdecl("tollgate_plugin_handshake")
public func tollgatePluginHandshake(_ out: UnsafeMutableRawPointer) {
    TollgatePluginHandshake.current.write(to: out)
}

/// Returns a retained ``LDAPStageFactory`` (`Unmanaged.passRetained(…).toOpaque()`);
/// the relay takes ownership with `takeRetainedValue()`.
///
/// C: `void *tollgate_plugin_create(void)`.
@_cdecl("tollgate_plugin_create")
public func tollgatePluginCreate() -> UnsafeMutableRawPointer {
    Unmanaged.passRetained(LDAPStageFactory() as AnyObject).toOpaque()
}
