import SpoolTestSupport
import TestSupport
import Testing
import TollgateConfiguration
import TollgateSpool

/// The stores every claim and administration test runs against: the embedded store,
/// and the in-memory one the queue-runner tests rely on to behave the same.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible {
    case sqlite, memory

    var testDescription: String { rawValue }

    /// Runs `body` with a fresh, empty store of this kind.
    func with(_ body: (any Spool) async throws -> Void) async throws {
        switch self {
        case .memory:
            try await body(InMemorySpool(node: "node-a"))
        case .sqlite:
            let dir = try TemporaryDirectory(label: "spool")
            try await body(SQLiteSpool(directory: dir.path, node: "node-a", logger: SpoolFixtures.quietLogger))
            dir.remove()
        }
    }
}
