import SMTPCore
import TollgatePolicy
import Yams

/// Reads a Yams node tree while collecting located diagnostics, so that one run of
/// `tollgate check` reports every problem as `FILE:LINE:COLUMN: message`.
public struct YAMLReader {
    public let file: String
    public var diagnostics: [PolicyDiagnostic] = []

    public init(file: String) {
        self.file = file
    }

    public func location(_ node: Node?) -> SourceLocation {
        SourceLocation(file: file, line: node?.mark?.line ?? 1, column: node?.mark?.column ?? 1)
    }

    public mutating func error(_ node: Node?, _ message: String) {
        diagnostics.append(PolicyDiagnostic(location(node), message))
    }

    /// Parses a document; a syntax error becomes a located diagnostic.
    public mutating func compose(_ text: String) -> Node? {
        do {
            return try Yams.compose(yaml: text)
        } catch let error as YamlError {
            switch error {
            case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
                .composer(let context, let problem, let mark, _):
                let where_ = context.map { " \($0.text)" } ?? ""
                diagnostics.append(PolicyDiagnostic(SourceLocation(file: file, line: mark.line, column: mark.column), "YAML syntax error: \(problem)\(where_)"))
            default:
                diagnostics.append(PolicyDiagnostic(SourceLocation(file: file, line: 1, column: 1), "YAML error: \(error)"))
            }
            return nil
        } catch {
            diagnostics.append(PolicyDiagnostic(SourceLocation(file: file, line: 1, column: 1), "YAML error: \(error)"))
            return nil
        }
    }

    /// The entries of a mapping, in order; unknown keys and duplicates are reported.
    public mutating func mapping(_ node: Node, allowed: Set<String>, what: String) -> [(key: String, keyNode: Node, value: Node)] {
        guard case .mapping(let mapping) = node else {
            error(node, "\(what) must be a mapping")
            return []
        }
        var seen = Set<String>()
        var result: [(key: String, keyNode: Node, value: Node)] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                error(keyNode, "keys of \(what) must be plain names")
                continue
            }
            let key = scalar.string
            if !allowed.contains(key) {
                error(keyNode, "unknown key '\(key)' in \(what) (expected one of: \(allowed.sorted().joined(separator: ", ")))")
                continue
            }
            if !seen.insert(key).inserted {
                error(keyNode, "duplicate key '\(key)' in \(what)")
                continue
            }
            result.append((key, keyNode, value))
        }
        return result
    }

    public mutating func string(_ node: Node, _ what: String) -> String? {
        guard case .scalar(let scalar) = node, !scalar.string.isEmpty else {
            error(node, "\(what) must be a non-empty string")
            return nil
        }
        return scalar.string
    }

    public mutating func sequence(_ node: Node, _ what: String) -> [Node] {
        guard case .sequence(let sequence) = node else {
            error(node, "\(what) must be a list")
            return []
        }
        return Array(sequence)
    }

    public mutating func strings(_ node: Node, _ what: String) -> [String] {
        sequence(node, what).compactMap { string($0, "each entry of \(what)") }
    }

    /// A whole number of at least `min`; `why`, when given, is said after a refusal
    /// (`limits.max_recipients must be a whole number of at least 100, not '50' (RFC …)`).
    public mutating func int(_ node: Node, _ what: String, min: Int = 0, why: String? = nil) -> Int? {
        guard let text = string(node, what) else { return nil }
        guard let value = Int(text), value >= min else {
            error(node, "\(what) must be a whole number of at least \(min), not '\(text)'" + (why.map { " (\($0))" } ?? ""))
            return nil
        }
        return value
    }

    public mutating func bool(_ node: Node, _ what: String) -> Bool? {
        guard let text = string(node, what) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            error(node, "\(what) must be true or false, not '\(text)'")
            return nil
        }
    }

    public mutating func choice<T: RawRepresentable>(_ node: Node, _ what: String, _ type: T.Type, _ all: [T]) -> T? where T.RawValue == String {
        guard let text = string(node, what) else { return nil }
        guard let value = T(rawValue: text) else {
            error(node, "\(what) must be one of \(all.map(\.rawValue).joined(separator: ", ")), not '\(text)'")
            return nil
        }
        return value
    }

    /// A cipher profile (`intermediate`, `legacy`) or a list of suite names, written as
    /// one string (names separated by `:`, OpenSSL style) or a YAML list.
    public mutating func cipherSuites(_ node: Node, _ what: String) -> [TLSPolicy.Suite]? {
        let names: [String]
        if case .sequence = node {
            names = strings(node, what)
        } else if let text = string(node, what) {
            names = text.split(separator: ":").map { String($0).trimmingCharacters(in: " ") }
        } else {
            return nil
        }
        switch TLSPolicy.suites(named: names) {
        case .success(let suites): return suites
        case .failure(let problem):
            error(node, "\(what): \(problem)")
            return nil
        }
    }

    /// TLS 1.0 and 1.1 have no AEAD suites: a minimum below 1.2 needs CBC suites offered.
    public mutating func checkSuitesCoverVersion(_ policy: TLSPolicy, _ node: Node, _ what: String) {
        if policy.minimumVersion < .v1_2, !policy.suites.contains(where: { !$0.aead }) {
            error(node, "TLS \(policy.minimumVersion.rawValue) has no AEAD cipher suites; set \(what): legacy (or name CBC suites) for clients that old")
        }
    }

    /// `30s`, `5m`, `1h`, `5d`, or plain seconds.
    public mutating func duration(_ node: Node, _ what: String) -> Double? {
        guard let text = string(node, what) else { return nil }
        guard let value = Units.duration(text) else {
            error(node, "\(what) must be a duration such as 30s, 5m, 1h or 5d (a unit is required), not '\(text)'")
            return nil
        }
        return value
    }

    /// `25MB`, `10KB`, `1GB` (powers of 1024), or plain bytes.
    public mutating func size(_ node: Node, _ what: String) -> Int? {
        guard let text = string(node, what) else { return nil }
        guard let value = Units.size(text) else {
            error(node, "\(what) must be a size such as 10MB, 512KB or 1048576, not '\(text)'")
            return nil
        }
        return value
    }

    /// Reports `cannot read PATH: why` at `node` when `path` is not a readable file.
    public mutating func requireReadable(_ node: Node, _ path: String) {
        if let why = PolicySettingsReader.whyUnreadable(path) { error(node, "cannot read \(path): \(why)") }
    }

    /// `host:port` or `[v6]:port`.
    public mutating func hostPort(_ node: Node, _ what: String) -> (String, Int)? {
        guard let text = string(node, what) else { return nil }
        guard let value = Units.hostPort(text) else {
            if let (host, port) = Units.splitHostPort(text), !host.isEmpty, !port.isEmpty, port.allSatisfy(\.isASCII), port.allSatisfy(\.isNumber) {
                error(node, "\(what): the port must be from 0 to 65535, not \(port) (in '\(text)')")
            } else {
                error(node, "\(what) must be host:port (or [v6-address]:port), not '\(text)'")
            }
            return nil
        }
        return value
    }

    /// The node as a plugin settings value, keeping every location.
    public func settings(_ node: Node) -> PolicySettings {
        let loc = location(node)
        switch node {
        case .scalar(let scalar):
            if scalar.tag.description == "tag:yaml.org,2002:null" || (scalar.style == .plain && (scalar.string == "~" || scalar.string == "null" || scalar.string.isEmpty)) {
                return PolicySettings(.null, at: loc)
            }
            return PolicySettings(.scalar(scalar.string), at: loc)
        case .sequence(let sequence):
            return PolicySettings(.list(sequence.map { settings($0) }), at: loc)
        case .mapping(let mapping):
            return PolicySettings(
                .map(mapping.map { (key: $0.key.string ?? "", keyLocation: location($0.key), value: settings($0.value)) }),
                at: loc
            )
        case .alias:
            return PolicySettings(.null, at: loc)
        }
    }
}

/// Unit parsing shared by the configuration and plugin settings.
public enum Units {
    public static func duration(_ text: String) -> Double? { PolicyUnits.duration(text) }

    public static func size(_ text: String) -> Int? { PolicyUnits.size(text) }

    public static func hostPort(_ text: String) -> (String, Int)? {
        guard let (host, portText) = splitHostPort(text), !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        return (String(host), port)
    }

    /// The host and the port's text of `host:port` or `[v6]:port`, unchecked.
    static func splitHostPort(_ text: String) -> (host: Substring, port: Substring)? {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            return (text[text.index(after: text.startIndex)..<close], rest.dropFirst())
        }
        guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
        return (text[..<colon], text[text.index(after: colon)...])
    }
}

extension String {
    public func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return String(s)
    }
}

extension Substring {
    public func trimmingCharacters(in set: Character) -> String { String(self).trimmingCharacters(in: set) }
}
