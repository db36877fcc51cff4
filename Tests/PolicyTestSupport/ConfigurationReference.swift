import Foundation

/// `docs/configuration.md`, the configuration reference: the tests of the loader and of
/// each plugin check that every key they accept is written there as `` `PREFIX.KEY` ``.
public enum ConfigurationReference {
    /// The reference of this checkout (found from this file's path).
    public static var text: String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("docs/configuration.md"), encoding: .utf8)) ?? ""
    }

    /// The keys, each with `prefix` before it, that the reference does not name in backquotes.
    public static func undocumented(_ keys: some Sequence<String>, prefix: String = "") -> [String] {
        let text = Self.text
        return keys.map { prefix + $0 }.filter { !text.contains("`\($0)`") }.sorted()
    }
}
