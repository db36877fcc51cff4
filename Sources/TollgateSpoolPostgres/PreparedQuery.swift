import NIOConcurrencyHelpers
import PostgresNIO

/// A statement of the message path run as a named prepared statement: parsed and
/// planned once per connection instead of at every call. `bench/run.sh --cluster`
/// showed planning to be most of the database's time for the big statements (0.64 ms
/// of the 1.0 ms per delivery's `recordAttempt`, planned 12,860 times in one run).
///
/// The SQL is the text the statement's `PostgresQuery` interpolation makes (its values
/// are all binds, so the text is the same at every call); the first call registers it
/// under `Tag`'s name, and a call whose text differs runs unprepared (``PostgresSpool/execute(_:_:)``).
struct PreparedQuery<Tag>: PostgresPreparedStatement {
    typealias Row = PostgresRandomAccessRow

    static var name: String { "tollgate_" + String(describing: Tag.self) }
    static var sql: String { PreparedSQL.sql(name) ?? "" }

    let bindings: PostgresBindings

    func makeBindings() throws -> PostgresBindings { bindings }
    func decodeRow(_ row: PostgresRow) throws -> PostgresRandomAccessRow { row.makeRandomAccess() }
}

/// The text of each prepared statement, as first seen.
enum PreparedSQL {
    private static let registry = NIOLockedValueBox<[String: String]>([:])

    static func sql(_ name: String) -> String? { registry.withLockedValue { $0[name] } }

    /// Registers `sql` under `name` if it has none; whether `sql` is the registered text.
    static func register(_ name: String, _ sql: String) -> Bool {
        registry.withLockedValue { known in
            if let seen = known[name] { return seen == sql }
            known[name] = sql
            return true
        }
    }
}

/// The tags of the prepared statements (their names on the server: `tollgate_…`).
enum RecordAttemptStatement {}
enum ClaimDueStatement {}
enum InsertBatchStatement {}
enum LoadStatement {}
enum CounterCommitStatement {}

extension PostgresClient {
    /// `query` as the prepared statement `Tag`, or unprepared if its text is not the one
    /// registered for `Tag`.
    func rows<Tag>(_ query: PostgresQuery, prepared tag: Tag.Type) async throws -> [PostgresRandomAccessRow] {
        guard PreparedSQL.register(PreparedQuery<Tag>.name, query.sql) else { return try await PostgresSpool.rows(self.query(query)) }
        var rows: [PostgresRandomAccessRow] = []
        for try await row in try await execute(PreparedQuery<Tag>(bindings: query.binds)) { rows.append(row) }
        return rows
    }
}
