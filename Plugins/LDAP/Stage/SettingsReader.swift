import TollgatePolicy

#if canImport(Glibc)
import Glibc
#endif

/// Reads typed values out of ``PolicySettings``, collecting located diagnostics
/// instead of stopping at the first problem.
struct SettingsReader {
    let settings: PolicySettings
    private(set) var diagnostics: [PolicyDiagnostic] = []

    init(_ settings: PolicySettings) {
        self.settings = settings
    }

    mutating func fail(_ location: SourceLocation, _ message: String) {
        diagnostics.append(PolicyDiagnostic(location, message))
    }

    /// A scalar string, or `nil` (with a diagnostic if present but not a scalar).
    mutating func string(_ key: String) -> String? {
        guard let node = settings[key], !node.isNull else { return nil }
        guard let value = node.string else {
            fail(node.location, "'\(key)' must be a string")
            return nil
        }
        return value
    }

    mutating func requiredString(_ key: String) -> String? {
        guard let node = settings[key], !node.isNull else {
            fail(settings.location, "missing required key '\(key)'")
            return nil
        }
        guard let value = node.string, !value.trimmingSpaces.isEmpty else {
            fail(node.location, "'\(key)' must be a non-empty string")
            return nil
        }
        return value
    }

    /// `true/false`, `yes/no`, `on/off`.
    mutating func bool(_ key: String, default fallback: Bool) -> Bool {
        guard let node = settings[key], !node.isNull else { return fallback }
        switch node.string?.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            fail(node.location, "'\(key)' must be true or false")
            return fallback
        }
    }

    mutating func int(_ key: String, default fallback: Int, range: ClosedRange<Int>) -> Int {
        guard let node = settings[key], !node.isNull else { return fallback }
        guard let text = node.string, let value = Int(text) else {
            fail(node.location, "'\(key)' must be a whole number")
            return fallback
        }
        guard range.contains(value) else {
            fail(node.location, "'\(key)' must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
            return fallback
        }
        return value
    }

    /// A duration in seconds: `500ms`, `5s`, `10m`, `1h`, `1d`, or `0`.
    mutating func duration(_ key: String, default fallback: Double, range: ClosedRange<Double>) -> Double {
        guard let node = settings[key], !node.isNull else { return fallback }
        guard let text = node.string, let value = Self.parseDuration(text) else {
            fail(node.location, "'\(key)' must be a duration such as 30s, 5m, 1h or 1d")
            return fallback
        }
        guard range.contains(value) else {
            fail(node.location, "'\(key)' must be between \(Self.format(range.lowerBound)) and \(Self.format(range.upperBound))")
            return fallback
        }
        return value
    }

    /// A list of strings; a single scalar counts as a list of one.
    mutating func stringList(_ key: String) -> [String]? {
        guard let node = settings[key], !node.isNull else { return nil }
        if let single = node.string { return [single] }
        guard let items = node.list else {
            fail(node.location, "'\(key)' must be a list of strings")
            return nil
        }
        var values: [String] = []
        for item in items {
            guard let value = item.string else {
                fail(item.location, "'\(key)' must be a list of strings")
                continue
            }
            values.append(value)
        }
        return values
    }

    func location(_ key: String) -> SourceLocation {
        settings[key]?.location ?? settings.location
    }

    /// A path as written, resolved against the folder of the file it was written in.
    func resolvedPath(_ path: String, at location: SourceLocation) -> String {
        guard !path.hasPrefix("/") else { return path }
        let file = location.file
        guard let slash = file.lastIndex(of: "/") else { return path }
        return String(file[..<slash]) + "/" + path
    }

    static func parseDuration(_ text: String) -> Double? { PolicyUnits.duration(text) }

    static func format(_ seconds: Double) -> String {
        if seconds >= 1, seconds == seconds.rounded() { return "\(Int(seconds))s" }
        return "\(Int((seconds * 1000).rounded()))ms"
    }
}

extension String {
    var trimmingSpaces: String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}

/// Small file helpers without Foundation.
enum FileAccess {
    static func isReadable(_ path: String) -> Bool {
        access(path, R_OK) == 0
    }

    /// The file's contents as UTF-8, or `nil` when it cannot be read.
    static func read(_ path: String, limit: Int = 1 << 20) -> String? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count <= limit {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        guard ferror(file) == 0, bytes.count <= limit else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}
