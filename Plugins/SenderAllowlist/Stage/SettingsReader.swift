import TollgatePolicy

/// Reads typed values out of a ``PolicySettings`` map, collecting located
/// diagnostics instead of stopping at the first problem.
struct SettingsReader {
    let settings: PolicySettings
    private(set) var diagnostics: [PolicyDiagnostic] = []

    init(_ settings: PolicySettings) {
        self.settings = settings
    }

    mutating func fail(_ location: SourceLocation, _ message: String) {
        diagnostics.append(PolicyDiagnostic(location, message))
    }

    /// `true/false`, `yes/no`, `on/off`; `nil` when absent.
    mutating func bool(_ key: String) -> Bool? {
        guard let node = settings[key], !node.isNull else { return nil }
        switch node.string?.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            fail(node.location, "'\(key)' must be true or false")
            return nil
        }
    }

    /// A list of strings with their locations; a single scalar counts as a list of one.
    mutating func stringList(_ key: String) -> [(text: String, location: SourceLocation)]? {
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
}

extension String {
    var trimmingSpaces: String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}
