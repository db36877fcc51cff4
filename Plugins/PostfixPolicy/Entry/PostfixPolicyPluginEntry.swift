// The two C entry points of the `postfix-policy` plugin library (libtollgate-postfix-policy.so).
// Kept in their own module so that tests can link the stage's code without these
// symbols (every plugin exports the same two names).
import PostfixPolicyStage
import TollgatePolicy

/// Writes the plugin's ``TollgatePluginHandshake`` (the API and compiler versions it
/// was built with) into `out` (at least `MemoryLayout<TollgatePluginHandshake>.size`
/// writable, aligned bytes).
///
/// C: `void tollgate_plugin_handshake(void *out)`.
@_cdecl("tollgate_plugin_handshake")
public func tollgatePluginHandshake(_ out: UnsafeMutableRawPointer) {
    out.storeBytes(of: TollgatePluginHandshake.current, as: TollgatePluginHandshake.self)
}

/// Returns a retained ``PostfixPolicyFactory``; the relay takes ownership with
/// `takeRetainedValue()`.
///
/// C: `void *tollgate_plugin_create(void)`.
@_cdecl("tollgate_plugin_create")
public func tollgatePluginCreate() -> UnsafeMutableRawPointer {
    Unmanaged.passRetained(PostfixPolicyFactory() as AnyObject).toOpaque()
}
