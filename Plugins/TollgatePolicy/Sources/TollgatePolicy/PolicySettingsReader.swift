#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads typed values out of a ``PolicySettings`` map, collecting located diagnostics
/// instead of stopping at the first problem, so `tollgate check` shows every mistake
/// at once as `FILE:LINE:COLUMN: message`.
///
/// ```swift
/// var reader = PolicySettingsReader(settings)
/// let uri = reader.requiredString("uri")
/// let timeout = reader.duration("timeout", default: 5, range: 0.1...300)
/// return reader.diagnostics + settings.unknownKeys(allowed: [...])
/// ```
public struct PolicySettingsReader: Sendable {
    public let settings: PolicySettings
    public private(set) var diagnostics: [PolicyDiagnostic] = []

    public init(_ settings: PolicySettings) {
        self.settings = settings
    }

    public mutating func fail(_ location: SourceLocation, _ message: String) {
        diagnostics.append(PolicyDiagnostic(location, message))
    }

    /// Where `key` was written, or the map itself when it is absent.
    public func location(_ key: String) -> SourceLocation {
        settings[key]?.location ?? settings.location
    }

    /// A scalar string, or `nil` (with a diagnostic if present but not a scalar).
    public mutating func string(_ key: String) -> String? {
        guard let node = settings[key], !node.isNull else { return nil }
        guard let value = node.string else {
            fail(node.location, "'\(key)' must be a string")
            return nil
        }
        return value
    }

    public mutating func requiredString(_ key: String) -> String? {
        guard let node = settings[key], !node.isNull else {
            fail(settings.location, "missing required key '\(key)'")
            return nil
        }
        guard let value = node.string, !PolicyUnits.trim(value).isEmpty else {
            fail(node.location, "'\(key)' must be a non-empty string")
            return nil
        }
        return value
    }

    /// `true/false`, `yes/no`, `on/off`; `nil` when absent.
    public mutating func bool(_ key: String) -> Bool? {
        guard let node = settings[key], !node.isNull else { return nil }
        switch node.string?.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            fail(node.location, "'\(key)' must be true or false")
            return nil
        }
    }

    public mutating func bool(_ key: String, default fallback: Bool) -> Bool {
        bool(key) ?? fallback
    }

    public mutating func int(_ key: String, default fallback: Int, range: ClosedRange<Int>) -> Int {
        guard let node = settings[key], !node.isNull else { return fallback }
        guard let text = node.string, let value = Int(PolicyUnits.trim(text)) else {
            fail(node.location, "'\(key)' must be a whole number")
            return fallback
        }
        guard range.contains(value) else {
            fail(node.location, "'\(key)' must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
            return fallback
        }
        return value
    }

    /// A duration in seconds (``PolicyUnits/duration(_:)``: `500ms`, `5s`, `10m`, `1h`, `1d`, `0`).
    public mutating func duration(_ key: String, default fallback: Double, range: ClosedRange<Double>) -> Double {
        guard let node = settings[key], !node.isNull else { return fallback }
        guard let text = node.string, let value = PolicyUnits.duration(text) else {
            fail(node.location, "'\(key)' must be a duration such as 30s, 5m, 1h or 1d")
            return fallback
        }
        guard range.contains(value) else {
            fail(node.location, "'\(key)' must be between \(PolicyUnits.formatDuration(range.lowerBound)) and \(PolicyUnits.formatDuration(range.upperBound))")
            return fallback
        }
        return value
    }

    /// A list of strings with their locations; a single scalar counts as a list of one.
    public mutating func locatedStrings(_ key: String) -> [(text: String, location: SourceLocation)]? {
        guard let node = settings[key], !node.isNull else { return nil }
        if let single = node.string { return [(single, node.location)] }
        guard let items = node.list else {
            fail(node.location, "'\(key)' must be a list of strings")
            return nil
        }
        var values: [(text: String, location: SourceLocation)] = []
        for item in items {
            guard let value = item.string else {
                fail(item.location, "'\(key)' must be a list of strings")
                continue
            }
            values.append((value, item.location))
        }
        return values
    }

    /// A list of strings; a single scalar counts as a list of one.
    public mutating func stringList(_ key: String) -> [String]? {
        locatedStrings(key)?.map(\.text)
    }

    /// Why the file at `path` cannot be read, in words (`it does not exist`, `permission
    /// denied`, `it is a folder, not a file`, …), or nil when it can: for a diagnostic
    /// `cannot read PATH: WHY` that tells the administrator what to fix.
    public static func whyUnreadable(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            switch errno {
            case ENOENT: return "it does not exist"
            case EACCES: return "permission denied (on a folder above it)"
            case ENOTDIR: return "a part of its path is not a folder"
            default: return String(cString: strerror(errno))
            }
        }
        if (info.st_mode & S_IFMT) == S_IFDIR { return "it is a folder, not a file" }
        if access(path, R_OK) != 0 { return "permission denied" }
        return nil
    }

    /// A path as written, resolved against the folder of the file it was written in.
    public func resolvedPath(_ path: String, at location: SourceLocation) -> String {
        guard !path.hasPrefix("/") else { return path }
        let file = location.file
        guard let slash = file.lastIndex(of: "/") else { return path }
        return String(file[..<slash]) + "/" + path
    }
}
