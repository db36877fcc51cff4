import TollgatePolicy

/// The department policy files (`policies/*.yaml`, SPEC §5).
public struct DepartmentPolicies: Sendable {
    public struct Department: Sendable {
        public var info: DepartmentInfo
        public var file: String
    }

    public var departments: [Department] = []

    public init(departments: [Department] = []) {
        self.departments = departments
    }
}
