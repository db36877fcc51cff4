import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A fresh folder under `/tmp` named `tollgate-test-<label>-XXXXXX` (mode 0700).
///
/// It is *not* removed automatically: call ``remove()`` when done (a test that
/// fails half-way leaves its folder behind for inspection, and a stale one is
/// easy to spot by its prefix). Set `TOLLGATE_KEEP_TEST_DIRS=1` to make
/// ``remove()`` keep everything.
public final class TemporaryDirectory: Sendable {
    /// The prefix of every folder this type creates.
    public static let prefix = "/tmp/tollgate-test-"

    /// The absolute path of the folder.
    public let path: String

    /// Creates the folder; `label` (letters, digits, `-`, `_`) helps tell folders apart.
    public init(label: String = "") throws {
        let cleaned = String(label.unicodeScalars.filter { $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" }.prefix(40))
        var template = Array((Self.prefix + (cleaned.isEmpty ? "" : cleaned + "-") + "XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw TestSupportError.system("mkdtemp") }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `path` + `/` + `name`.
    public func file(_ name: String) -> String { path + "/" + name }

    /// Creates the subfolder `name` (and its parents) and returns its path.
    @discardableResult
    public func subdirectory(_ name: String) throws -> String {
        let sub = file(name)
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
        return sub
    }

    /// Deletes the folder and everything in it. Idempotent; errors are ignored.
    public func remove() {
        if let keep = getenv("TOLLGATE_KEEP_TEST_DIRS"), String(cString: keep) == "1" { return }
        // Refuse anything that is not ours, whatever happened to `path`.
        guard path.hasPrefix(Self.prefix), !path.contains("/../") else { return }
        try? FileManager.default.removeItem(atPath: path)
    }
}
