// The two C entry points of the `milter` plugin library (libtollgate-milter.so), in
// their own module so that tests can link the stage without them.
import MilterStage
import TollgatePolicy

/// Writes the plugin's ``TollgatePluginHandshake``. C: `void tollgate_plugin_handshake(void *out)`.
@_cdecl("tollgate_plugin_handshake")
public func tollgatePluginHandshake(_ out: UnsafeMutableRawPointer) {
    out.storeBytes(of: TollgatePluginHandshake.current, as: TollgatePluginHandshake.self)
}

/// Returns a retained ``MilterFactory``. C: `void *tollgate_plugin_create(void)`.
@_cdecl("tollgate_plugin_create")
public func tollgatePluginCreate() -> UnsafeMutableRawPointer {
    Unmanaged.passRetained(MilterFactory() as AnyObject).toOpaque()
}
