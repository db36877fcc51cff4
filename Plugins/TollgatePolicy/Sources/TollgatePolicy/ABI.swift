/// Version information that the relay and a plugin compare before either touches
/// the other's Swift types.
///
/// The values are `@_alwaysEmitIntoClient` on purpose: they are copied into the
/// plugin's binary when the plugin is compiled, so the handshake reports the API
/// version the plugin was *built* against, not the one the relay has loaded.
public enum TollgatePolicyABI {
    /// Bumped whenever a public type of this module changes shape.
    /// 2: stages change the message at `data` (``MessageChange``, ``PolicyContext/message``,
    /// ``PolicyStage/placement``), keep changes from `mail`/`rcpt` for `data`, change the
    /// envelope (``EnvelopeChange``) and hold or discard a message (``MessageDisposition``).
    /// 3: stages export their own counters and gauges (``PolicyStage/metrics()``,
    /// ``StageMetricSample``).
    /// 4: the context carries the connection (``PolicyContext/connection``: ports,
    /// reverse-DNS names, SASL mechanism, TLS and client certificate) and the queue id
    /// from the mail phase on (``PolicyContext/queueID``).
    @_alwaysEmitIntoClient
    public static var version: Int32 { 4 }

    /// The Swift compiler that built the caller, as `major * 10_000 + minor * 100 + patch`.
    ///
    /// Swift has no stable ABI for classes and protocols across compiler versions on
    /// Linux, so a plugin must be built by the same toolchain as the relay.
    @_alwaysEmitIntoClient
    public static var compilerVersion: Int32 {
        #if compiler(>=6.4)
        return 60_400
        #elseif compiler(>=6.3.1)
        return 60_301
        #elseif compiler(>=6.3)
        return 60_300
        #elseif compiler(>=6.2)
        return 60_200
        #elseif compiler(>=6.1)
        return 60_100
        #else
        return 60_000
        #endif
    }

    /// The C symbol a plugin exports that writes its ``TollgatePluginHandshake``:
    ///
    /// ```swift
    /// @_cdecl("tollgate_plugin_handshake")
    /// public func tollgatePluginHandshake(_ out: UnsafeMutableRawPointer) {
    ///     TollgatePluginHandshake.current.write(to: out)
    /// }
    /// ```
    public static let handshakeSymbol = "tollgate_plugin_handshake"
    /// The C symbol a plugin exports that returns a retained ``PolicyStageFactory``:
    ///
    /// ```swift
    /// @_cdecl("tollgate_plugin_create")
    /// public func tollgatePluginCreate() -> UnsafeMutableRawPointer {
    ///     Unmanaged.passRetained(MyFactory() as AnyObject).toOpaque()
    /// }
    /// ```
    public static let createSymbol = "tollgate_plugin_create"
}

/// What a plugin's handshake entry point writes. Plain integers only, so the relay
/// can read it before it trusts any Swift type of the plugin.
@frozen
public struct TollgatePluginHandshake {
    /// Always `0x544F4C4C` ("TOLL"): guards against a symbol of the same name that is not ours.
    public var magic: UInt32
    /// ``TollgatePolicyABI/version`` as the plugin was built.
    public var abiVersion: Int32
    /// ``TollgatePolicyABI/compilerVersion`` as the plugin was built.
    public var compilerVersion: Int32

    public static let magicValue: UInt32 = 0x544F_4C4C

    /// The handshake of the code that calls it: use this in a plugin's entry point.
    @_alwaysEmitIntoClient
    public static var current: TollgatePluginHandshake {
        TollgatePluginHandshake(
            magic: magicValue,
            abiVersion: TollgatePolicyABI.version,
            compilerVersion: TollgatePolicyABI.compilerVersion
        )
    }

    /// Writes the handshake to the buffer the relay passes (12 bytes, 4-byte aligned).
    @_alwaysEmitIntoClient
    public func write(to out: UnsafeMutableRawPointer) {
        out.storeBytes(of: magic, toByteOffset: 0, as: UInt32.self)
        out.storeBytes(of: abiVersion, toByteOffset: 4, as: Int32.self)
        out.storeBytes(of: compilerVersion, toByteOffset: 8, as: Int32.self)
    }

    /// Reads a handshake written by ``write(to:)``.
    @_alwaysEmitIntoClient
    public init(reading raw: UnsafeRawPointer) {
        self.init(
            magic: raw.load(fromByteOffset: 0, as: UInt32.self),
            abiVersion: raw.load(fromByteOffset: 4, as: Int32.self),
            compilerVersion: raw.load(fromByteOffset: 8, as: Int32.self)
        )
    }

    @_alwaysEmitIntoClient
    public init(magic: UInt32, abiVersion: Int32, compilerVersion: Int32) {
        self.magic = magic
        self.abiVersion = abiVersion
        self.compilerVersion = compilerVersion
    }
}
