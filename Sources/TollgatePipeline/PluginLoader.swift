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

    /// The plugins the search path holds under Tollgate's own naming
    /// (`libtollgate-NAME.so`), by name, for a "did you mean" after a mistyped `use:`.
    public static func available(searchPath: [String]) -> [String] {
        var names = Set<String>()
        for folder in searchPath {
            for file in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where file.hasPrefix("libtollgate-") && file.hasSuffix(".so") {
                names.insert(String(file.dropFirst("libtollgate-".count).dropLast(3)))
            }
        }
        return names.sorted()
    }

    /// The name in `names` closest to `name` within two edits (a typo), if any.
    public static func closest(to name: String, in names: [String]) -> String? {
        let scored = names.map { ($0, editDistance(Array(name), Array($0))) }.filter { $0.1 <= 2 }
        return scored.min { ($0.1, $0.0) < ($1.1, $1.0) }?.0
    }

    /// Levenshtein distance.
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
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
