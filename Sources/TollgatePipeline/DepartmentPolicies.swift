import Foundation
import TollgatePolicy
import Yams
import TollgateConfiguration
import TollgateMetrics
import SMTPCore

/// The department policy files (`policies/*.yaml`, SPEC §5): who belongs to each
/// department, each plugin's settings for it, its route and its size limit.
public struct DepartmentPolicies: Sendable {
    public struct Department: Sendable {
        public var info: DepartmentInfo
        public var file: String
        public var networks: [CIDRNetwork]
        /// Plugin name → that plugin's section.
        public var sections: [String: PolicySettings]
        public var upstream: String?
        public var maxMessageSize: Int?
    }

    public var departments: [Department] = []

    public init(departments: [Department] = []) {
        self.departments = departments
    }

    public func department(named name: String) -> Department? {
        departments.first { $0.info.name == name }
    }

    /// The department whose `members.networks` contain `address`, if any.
    public func department(forClient address: String) -> Department? {
        guard let bytes = IPAddressParser.parseClient(address) else { return nil }
        return departments.first { $0.networks.contains { $0.contains(bytes) } }
    }

    /// Reads every `*.yaml` in `folder`. `plugins` are the plugin names that may have
    /// sections; `upstreams` the upstream names a route may name.
    public static func load(folder: String, plugins: Set<String>, upstreams: Set<String>) -> (DepartmentPolicies, [PolicyDiagnostic]) {
        var result = DepartmentPolicies()
        var diagnostics: [PolicyDiagnostic] = []
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
            .sorted()
        for name in files {
            let path = folder + "/" + name
            var reader = YAMLReader(file: path)
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                diagnostics.append(PolicyDiagnostic(SourceLocation(file: path, line: 1, column: 1), "cannot read the policy file"))
                continue
            }
            guard let root = reader.compose(text) else {
                if reader.diagnostics.isEmpty { reader.error(nil, "the policy file is empty") }
                diagnostics += reader.diagnostics
                continue
            }
            let allowed = Self.fileKeys.union(plugins)
            var department: Department?
            var info = DepartmentInfo(name: "")
            var networks: [CIDRNetwork] = []
            var sections: [String: PolicySettings] = [:]
            var upstream: String?
            var maxSize: Int?
            for (key, _, value) in reader.mapping(root, allowed: allowed, what: "a department policy (plugin sections must name a configured stage)") {
                switch key {
                case "department":
                    if let n = reader.string(value, "department") { info.name = n }
                case "members":
                    for (k, _, v) in reader.mapping(value, allowed: Self.memberKeys, what: "members") {
                        switch k {
                        case "ldap_groups":
                            info.ldapGroups = reader.strings(v, "members.ldap_groups")
                            // In a [a, b] list an unquoted DN is split at its commas.
                            for item in reader.sequence(v, "members.ldap_groups") {
                                if case .scalar(let scalar) = item, scalar.style == .plain, !scalar.string.contains(",") {
                                    reader.error(item, "'\(scalar.string)' is not a whole group DN; quote DNs in [ ] lists, e.g. [\"cn=finance,ou=groups,dc=example,dc=com\"]")
                                }
                            }
                        case "ldap_attributes":
                            for (attr, _, values) in reader.mapping(v, allowed: Self.anyKey(v), what: "members.ldap_attributes") {
                                info.ldapAttributes[attr] = reader.strings(values, "values of \(attr)")
                            }
                        default:
                            for n in reader.sequence(v, "members.networks") {
                                guard let s = reader.string(n, "a network") else { continue }
                                switch CIDRNetwork.parse(s) {
                                case .success(let network):
                                    networks.append(network)
                                    info.networks.append(s)
                                case .failure(let error):
                                    reader.error(n, error.message)
                                }
                            }
                        }
                    }
                case "route":
                    for (_, _, v) in reader.mapping(value, allowed: Self.routeKeys, what: "route") {
                        if let u = reader.string(v, "route.upstream") {
                            if upstreams.contains(u) { upstream = u } else { reader.error(v, "route.upstream names '\(u)', which is not among the upstreams") }
                        }
                    }
                case "max_message_size":
                    maxSize = reader.size(value, "max_message_size")
                default:
                    sections[key] = reader.settings(value)
                }
            }
            if info.name.isEmpty {
                reader.error(root, "a department policy needs department: NAME")
            } else if result.departments.contains(where: { $0.info.name == info.name }) {
                reader.error(root, "department '\(info.name)' is defined twice")
            } else {
                department = Department(info: info, file: path, networks: networks, sections: sections, upstream: upstream, maxMessageSize: maxSize)
            }
            diagnostics += reader.diagnostics
            if let department, reader.diagnostics.isEmpty { result.departments.append(department) }
        }
        return (result, diagnostics)
    }

    /// The keys of a policy file besides the plugin sections (one per configured
    /// stage, named by its `use:`), of `members:` and of `route:`; documented in
    /// docs/configuration.md (a test checks).
    public static let fileKeys: Set<String> = ["department", "members", "route", "max_message_size"]
    public static let memberKeys: Set<String> = ["ldap_groups", "ldap_attributes", "networks"]
    public static let routeKeys: Set<String> = ["upstream"]

    /// Every key of a mapping node (for free-form maps such as attribute names).
    static func anyKey(_ node: Node) -> Set<String> {
        guard case .mapping(let m) = node else { return [] }
        return Set(m.keys.compactMap(\.string))
    }
}
