// The two C entry points of the `dkim` plugin library (libtollgate-dkim.so), in
// their own module so that tests can link the stage without them.
import DKIMStage
import TollgatePolicy

/// Writes the plugin's ``TollgatePluginHandshake``. C: `void tollgate_plugin_handshake(void *out)`.
@_cdecl("tollgate_plugin_handshake")
public func tollgatePluginHandshake(_ out: UnsafeMutableRawPointer) {
    out.storeBytes(of: TollgatePluginHandshake.current, as: TollgatePluginHandshake.self)
}

/// Returns a retained ``DKIMFactory``. C: `void *tollgate_plugin_create(void)`.
@_cdecl("tollgate_plugin_create")
public func tollgatePluginCreate() -> UnsafeMutableRawPointer {
    Unmanaged.passRetained(DKIMFactory() as AnyObject).toOpaque()
}
