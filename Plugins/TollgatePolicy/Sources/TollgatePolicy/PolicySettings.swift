/// Where a settings value was written: for `FILE:LINE:COLUMN: message` diagnostics.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// A plugin's settings as written in the configuration or a department policy file:
/// a YAML-like tree of scalars, lists and maps, each node with its source location.
///
/// The relay owns the YAML parser; plugins only see this value type.
public struct PolicySettings: Sendable, Hashable {
    public enum Value: Sendable, Hashable {
        case null
        case scalar(String)
        case list([PolicySettings])
        /// Keys in the order written, each with the key's own location.
        case map([(key: String, keyLocation: SourceLocation, value: PolicySettings)])

        public static func == (lhs: Value, rhs: Value) -> Bool {
            switch (lhs, rhs) {
            case (.null, .null): return true
            case (.scalar(let a), .scalar(let b)): return a == b
            case (.list(let a), .list(let b)): return a == b
            case (.map(let a), .map(let b)):
                return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
            default: return false
            }
        }

        public func hash(into hasher: inout Hasher) {
            switch self {
            case .null: hasher.combine(0)
            case .scalar(let s): hasher.combine(s)
            case .list(let l): hasher.combine(l)
            case .map(let m):
                for entry in m {
                    hasher.combine(entry.key)
                    hasher.combine(entry.value)
                }
            }
        }
    }

    public var value: Value
    public var location: SourceLocation

    public init(_ value: Value, at location: SourceLocation) {
        self.value = value
        self.location = location
    }

    /// An empty map, for stages configured without settings.
    public static func empty(at location: SourceLocation) -> PolicySettings {
        PolicySettings(.map([]), at: location)
    }

    public var string: String? {
        if case .scalar(let s) = value { return s }
        return nil
    }

    public var list: [PolicySettings]? {
        if case .list(let l) = value { return l }
        return nil
    }

    public var isNull: Bool {
        if case .null = value { return true }
        return false
    }

    /// The map's keys in the order written; empty for non-maps.
    public var keys: [String] {
        if case .map(let m) = value { return m.map(\.key) }
        return []
    }

    /// The value under `key` of a map.
    public subscript(key: String) -> PolicySettings? {
        if case .map(let m) = value { return m.first { $0.key == key }?.value }
        return nil
    }

    /// The location of `key` in a map (for "unknown key" diagnostics).
    public func location(ofKey key: String) -> SourceLocation? {
        if case .map(let m) = value { return m.first { $0.key == key }?.keyLocation }
        return nil
    }

    /// Diagnostics for every key of this map that is not in `allowed`.
    public func unknownKeys(allowed: Set<String>) -> [PolicyDiagnostic] {
        guard case .map(let m) = value else { return [] }
        return m.filter { !allowed.contains($0.key) }.map {
            PolicyDiagnostic(
                $0.keyLocation,
                "unknown key '\($0.key)' (expected one of: \(allowed.sorted().joined(separator: ", ")))"
            )
        }
    }
}

/// A problem found in settings, with where it is.
public struct PolicyDiagnostic: Sendable, Hashable, CustomStringConvertible, Error {
    public var location: SourceLocation
    public var message: String

    public init(_ location: SourceLocation, _ message: String) {
        self.location = location
        self.message = message
    }

    /// `FILE:LINE:COLUMN: message`
    public var description: String { "\(location): \(message)" }
}
