import Foundation
import TollgatePolicy

#if canImport(Glibc)
import Glibc
import TollgateConfiguration
import TollgateMetrics
import SMTPCore
#endif

/// Loads policy plugins: shared libraries built against `TollgatePolicy`.
///
/// The handshake symbol is called and its versions compared before any Swift type
/// of the plugin is touched; a missing, incompatible or broken library is refused
/// with the file and the reason. Libraries are opened with `RTLD_NODELETE` and never
/// closed: unmapping Swift code breaks later dynamic casts.
public enum PluginLoader {
    public struct Failure: Error, CustomStringConvertible {
        public var file: String
        public var reason: String
        public var description: String { "\(file): \(reason)" }
    }

    typealias HandshakeFunction = @convention(c) (UnsafeMutableRawPointer) -> Void
    typealias CreateFunction = @convention(c) () -> UnsafeMutableRawPointer?

    /// File names tried for plugin `name` in each folder of the search path.
    public static func candidateNames(_ name: String) -> [String] {
        ["libtollgate-\(name).so", "lib\(name).so", "\(name).so"]
    }

    /// The folders searched: `plugins.path`, then the folder of the running executable
    /// (a build folder), its `../lib/tollgate/plugins` (the layout `make install`
    /// makes: PREFIX/bin/tollgate and PREFIX/lib/tollgate/plugins/) and `../lib/tollgate`.
    public static func searchPath(configured: [String]) -> [String] {
        var folders = configured
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            let dir = (exe as NSString).deletingLastPathComponent
            folders.append(dir)
            folders.append(dir + "/../lib/tollgate/plugins")
            folders.append(dir + "/../lib/tollgate")
        }
        return folders
    }

    /// Finds the library for plugin `name`.
    public static func locate(_ name: String, searchPath: [String]) -> String? {
        for folder in searchPath {
            for file in candidateNames(name) {
                let path = folder + "/" + file
                if FileManager.default.fileExists(atPath: path) { return path }
            }
        }
        return nil
    }

    /// Opens `path` and returns its factory.
    public static func load(_ path: String) throws(Failure) -> any PolicyStageFactory {
        guard FileManager.default.fileExists(atPath: path) else {
            throw Failure(file: path, reason: "no such file")
        }
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) else {
            let message = dlerror().map { String(cString: $0) } ?? "unknown error"
            throw Failure(file: path, reason: "cannot be loaded: \(message)")
        }
        guard let handshakeSymbol = dlsym(handle, TollgatePolicyABI.handshakeSymbol) else {
            throw Failure(file: path, reason: "is not a Tollgate plugin (no \(TollgatePolicyABI.handshakeSymbol) symbol)")
        }
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        defer { scratch.deallocate() }
        scratch.initializeMemory(as: UInt8.self, repeating: 0, count: 64)
        unsafeBitCast(handshakeSymbol, to: HandshakeFunction.self)(scratch)
        let handshake = TollgatePluginHandshake(reading: scratch)
        guard handshake.magic == TollgatePluginHandshake.magicValue else {
            throw Failure(file: path, reason: "is not a Tollgate plugin (bad handshake)")
        }
        guard handshake.abiVersion == TollgatePolicyABI.version else {
            throw Failure(file: path, reason: "was built against TollgatePolicy ABI \(handshake.abiVersion); this relay has ABI \(TollgatePolicyABI.version): rebuild the plugin")
        }
        guard handshake.compilerVersion == TollgatePolicyABI.compilerVersion else {
            throw Failure(
                file: path,
                reason: "was built with Swift \(versionText(handshake.compilerVersion)); this relay was built with Swift \(versionText(TollgatePolicyABI.compilerVersion)): rebuild the plugin with the same toolchain"
            )
        }
        guard let createSymbol = dlsym(handle, TollgatePolicyABI.createSymbol) else {
            throw Failure(file: path, reason: "has no \(TollgatePolicyABI.createSymbol) symbol")
        }
        guard let raw = unsafeBitCast(createSymbol, to: CreateFunction.self)() else {
            throw Failure(file: path, reason: "\(TollgatePolicyABI.createSymbol) returned nothing")
        }
        let object = Unmanaged<AnyObject>.fromOpaque(raw).takeRetainedValue()
        guard let factory = object as? any PolicyStageFactory else {
            throw Failure(file: path, reason: "returned an object that is not a PolicyStageFactory (was it linked against another copy of TollgatePolicy?)")
        }
        return factory
    }

    static func versionText(_ v: Int32) -> String {
        "\(v / 10_000).\(v / 100 % 100).\(v % 100)"
    }
}
