import PolicyTestSupport
import TestSupport
import Testing
@testable import TollgateConfiguration
import TollgatePipeline

/// docs/configuration.md names every key the loader accepts (its own tables,
/// `ConfigurationKeys`) and every key of a department policy file.
@Suite struct ConfigurationReferenceTests {
    @Test func everyKeyOfTheLoaderIsDocumented() {
        #expect(!ConfigurationReference.text.isEmpty, "docs/configuration.md is missing")
        let keys = ConfigurationKeys.dotted
        #expect(keys.count > 70, "\(keys.count) keys")
        #expect(keys.contains("spool.postgres.url") && keys.contains("listeners[].auth") && keys.contains("upstreams[].auth.username") && keys.contains("stages[].mode"))
        #expect(ConfigurationReference.undocumented(keys) == [])
    }

    @Test func everyKeyOfADepartmentPolicyFileIsDocumented() {
        let prefix = "department-policy."
        #expect(ConfigurationReference.undocumented(DepartmentPolicies.fileKeys, prefix: prefix) == [])
        #expect(ConfigurationReference.undocumented(DepartmentPolicies.memberKeys, prefix: prefix + "members.") == [])
        #expect(ConfigurationReference.undocumented(DepartmentPolicies.routeKeys, prefix: prefix + "route.") == [])
    }

    /// The tables are what the loader reads with: a key outside them is refused, located.
    /// `make install`'s layout: PREFIX/bin/tollgate reads PREFIX/etc/tollgate/tollgate.yaml.
    @Test func theInstalledConfigurationIsBesideTheInstalledBinary() {
        #expect(ConfigurationLoader.installedPath(executable: "/usr/local/bin/tollgate") == "/usr/local/etc/tollgate/tollgate.yaml")
        #expect(ConfigurationLoader.installedPath(executable: "/opt/tg/bin/tollgate") == "/opt/tg/etc/tollgate/tollgate.yaml")
        #expect(ConfigurationLoader.installedPath(executable: "/bin/tollgate") == "/etc/tollgate/tollgate.yaml")
        #expect(ConfigurationLoader.installedPath(executable: "/work/main/.build/debug/tollgate") == nil)
        #expect(ConfigurationLoader.installedPath(executable: nil) == nil)
    }

    @Test func aKeyOutsideTheTablesIsRefusedWithItsLocation() {
        let text = "listeners:\n  - name: a\n    address: 127.0.0.1:2525\n    colour: red\nupstreams:\n  - name: o\n    directory: /tmp\n"
        let (_, diagnostics) = ConfigurationLoader.parseCollecting(text, file: "t.yaml")
        #expect(diagnostics.count == 1, "\(diagnostics)")
        #expect(diagnostics.first?.description.hasPrefix("t.yaml:4:5: unknown key 'colour' in a listener") == true, "\(diagnostics)")
    }
}

/// The reference's defaults are the loader's: setting a key to the default the table
/// gives changes nothing in the configuration read, and a value of the wrong shape is
/// refused with the file, line and column of the key's value.
@Suite struct ConfigurationDefaultsTests {
    /// A YAML node, written in block style.
    indirect enum Node {
        case map([(String, Node)])
        case list([Node])
        case raw(String)

        func yaml(_ indent: String = "") -> String {
            switch self {
            case .raw(let text): return " " + text + "\n"
            case .list(let items):
                return "\n" + items.map { item -> String in
                    guard case .map(let pairs) = item, let first = pairs.first else { return indent + "  -" + item.yaml(indent + "    ") }
                    var out = indent + "  - " + first.0 + ":" + first.1.yaml(indent + "    ")
                    for (key, value) in pairs.dropFirst() { out += indent + "    " + key + ":" + value.yaml(indent + "    ") }
                    return out
                }.joined()
            case .map(let pairs):
                return "\n" + pairs.map { indent + "  " + $0.0 + ":" + $0.1.yaml(indent + "  ") }.joined()
            }
        }

        /// `value` at the path `["listeners", "[]", "tls"]`: into the first element of a list.
        mutating func set(_ path: ArraySlice<String>, _ value: Node) {
            guard let head = path.first else {
                self = value
                return
            }
            switch self {
            case .list(var items) where head == "[]":
                var first = items.first ?? .map([])
                first.set(path.dropFirst(), value)
                if items.isEmpty { items = [first] } else { items[0] = first }
                self = .list(items)
            case .map(var pairs):
                if let index = pairs.firstIndex(where: { $0.0 == head }) {
                    pairs[index].1.set(path.dropFirst(), value)
                } else {
                    var child: Node = path.dropFirst().first == "[]" ? .list([]) : .map([])
                    child.set(path.dropFirst(), value)
                    pairs.append((head, child))
                }
                self = .map(pairs)
            default:
                var fresh: Node = head == "[]" ? .list([]) : .map([])
                fresh.set(path, value)
                self = fresh
            }
        }

        var document: String {
            guard case .map(let pairs) = self else { return "" }
            return pairs.map { $0.0 + ":" + $0.1.yaml() }.joined()
        }
    }

    /// The smallest configuration that reads, with what each section needs before its
    /// other keys can be set.
    static func base(for key: String, certificates: TestCertificates) -> Node {
        var root = Node.map([
            ("listeners", .list([.map([("name", .raw("a")), ("address", .raw("127.0.0.1:2525"))])])),
            ("upstreams", .list([.map([("name", .raw("o")), ("hosts", .raw("[127.0.0.1:25]"))])])),
        ])
        let needs: [String: [(String, String)]] = [
            "tls.": [("tls.certificate", certificates.certificatePath), ("tls.key", certificates.keyPath)],
            "spool.postgres.": [("spool.postgres.url", "postgresql://tollgate@127.0.0.1/tollgate")],
            "metrics.": [("metrics.address", "127.0.0.1:9464")],
            "console.": [("console.address", "127.0.0.1:8025")],
            "stages[].": [("stages[].use", "rate-limit")],
        ]
        for (prefix, settings) in needs where key.hasPrefix(prefix) {
            for (path, value) in settings { root.set(Self.path(path), .raw(value)) }
        }
        return root
    }

    static func path(_ key: String) -> ArraySlice<String> {
        ArraySlice(key.replacingOccurrences(of: "[]", with: ".[]").split(separator: ".").map(String.init))
    }

    /// The table rows of the reference: key, type and default cells (`\|` is a bar inside a cell).
    static var rows: [(key: String, type: String, defaultValue: String)] {
        ConfigurationReference.text.split(separator: "\n").compactMap { line -> (String, String, String)? in
            guard line.hasPrefix("| `") else { return nil }
            let cells = line.replacingOccurrences(of: "\\|", with: "\u{1}").split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "\u{1}", with: "|") }
            guard cells.count >= 4, cells[0].hasPrefix("`"), cells[0].hasSuffix("`") else { return nil }
            return (String(cells[0].dropFirst().dropLast()), cells[1], cells[2])
        }
    }

    /// The documented default when it is one literal value (`` `30s` ``, `` `true` ``, `` `[1m, 5m]` ``).
    static func literal(_ cell: String) -> String? {
        guard cell.count > 2, cell.hasPrefix("`"), cell.hasSuffix("`"), !cell.dropFirst().dropLast().contains("`") else { return nil }
        return String(cell.dropFirst().dropLast())
    }

    static func read(_ node: Node) -> (text: String, configuration: String?, problems: [String]) {
        let text = node.document
        let (configuration, diagnostics) = ConfigurationLoader.parseCollecting(text, file: "t.yaml")
        var dumped: String?
        // Where each setting was written (its line) is not what it means.
        if let configuration {
            dumped = String(reflecting: configuration).replacing(/([A-Za-z]*[lL]ocation): (Optional\(t\.yaml:\d+:\d+\)|nil|t\.yaml:\d+:\d+)/) { "\($0.output.1): _" }
        }
        return (text, dumped, diagnostics.map(\.description))
    }

    /// Where two readings differ, with a little of each around it.
    static func difference(_ a: String?, _ b: String?) -> String {
        let a = Array(a ?? "nil"), b = Array(b ?? "nil")
        let at = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
        func around(_ s: [Character]) -> String { String(s[max(0, at - 80)..<min(s.count, at + 80)]) }
        return "with it: …\(around(a))…\nwithout: …\(around(b))…"
    }

    @Test func settingADocumentedDefaultChangesNothing() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let certificates = try TestCertificates.make(in: dir.path)
        let keys = Set(ConfigurationKeys.dotted)
        let defaults = Self.rows.compactMap { row in Self.literal(row.defaultValue).map { (row.key, $0) } }.filter { keys.contains($0.0) && !$0.1.contains(":") || $0.0 == "spool" }
        // Maps (`spool`, `log`) are checked through their keys.
        let scalars = defaults.filter { $0.0 != "spool" && $0.0 != "log" }
        #expect(scalars.count >= 35, "\(scalars.map(\.0))")
        for (key, value) in scalars {
            let base = Self.base(for: key, certificates: certificates)
            let without = Self.read(base)
            #expect(without.problems.isEmpty, "the base for \(key) does not read: \(without.problems)\n\(without.text)")
            var with = base
            with.set(Self.path(key), .raw(value))
            let read = Self.read(with)
            #expect(read.problems.isEmpty, "\(key): \(value) (the documented default) is refused: \(read.problems)\n\(read.text)")
            #expect(read.configuration == without.configuration, "\(key): \(value), the documented default, is not what the loader assumes without it: \(Self.difference(read.configuration, without.configuration))")
        }
    }

    @Test func aValueOfTheWrongShapeIsRefusedAtItsLine() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let certificates = try TestCertificates.make(in: dir.path)
        let keys = Set(ConfigurationKeys.dotted)
        let scalars = Self.rows.filter { keys.contains($0.key) && !$0.type.hasPrefix("map") && !$0.type.contains("list of listeners") && !$0.type.contains("list of upstreams") && !$0.type.contains("list of stages") && !$0.type.hasPrefix("any") }
        #expect(scalars.count >= 60, "\(scalars.map(\.key))")
        for row in scalars {
            var node = Self.base(for: row.key, certificates: certificates)
            node.set(Self.path(row.key), .raw("{ wrong: shape }"))
            let read = Self.read(node)
            let line = read.text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("{ wrong: shape }") }.map { $0 + 1 }
            #expect(read.problems.contains { $0.hasPrefix("t.yaml:\(line ?? 0):") }, "\(row.key): a map where \(row.type) belongs: \(read.problems)\n\(read.text)")
        }
    }
}
