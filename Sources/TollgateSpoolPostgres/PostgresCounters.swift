import TollgateConfiguration
import Foundation
import Logging
import NIOConcurrencyHelpers
import PostgresNIO
import TollgatePolicy

/// The plugins' counters (``PolicyCounterStore``) in the cluster's database, so that a
/// limit holds for every node together and survives restarts.
///
/// A counter is the rows of `counter_entries` with its name and window: committed
/// amounts (`reservation` NULL, `at` the acceptance time) count while `at` is within
/// the window; reservations (`reservation` = this process's incarnation and the
/// session) count for ``MemoryCounters/reservationLifetime`` at most, so a node that
/// died holding some stops holding them. A reservation checks and inserts in one
/// transaction under a transaction-scoped advisory lock per counter (taken in name
/// order, so two nodes never deadlock), which serialises the check-and-reserve of one
/// counter across the cluster and leaves other counters alone.
public final class PostgresCounters: PolicyCounterStore {
    let spool: PostgresSpool
    private let lastCleanup = NIOLockedValueBox(-Double.infinity)
    /// The sessions of this process that may hold reservations: a reservation is made
    /// only here (its key carries this process's incarnation), so commit and release of
    /// any other session — most of them, a relay without rate limits all — need no
    /// statement. A session is added before its first reservation and leaves at commit
    /// or release, which the relay calls at every session's end.
    private let reserving = NIOLockedValueBox(Set<String>())

    public init(_ spool: PostgresSpool) {
        self.spool = spool
    }

    func reservation(_ sessionID: String) -> String { "\(spool.incarnation)/\(sessionID)" }

    static let lifetime = MemoryCounters.reservationLifetime

    public func usage(_ counters: [CounterID], now: Double) async throws -> [CounterID: Int] {
        var result: [CounterID: Int] = [:]
        for counter in Set(counters) {
            let rows = try await spool.execute("cannot read counters", Self.usageQuery(counter, now: now, except: nil))
            result[counter] = try rows.first.map { try $0[0].decode(Int.self) } ?? 0
        }
        return result
    }

    static func usageQuery(_ counter: CounterID, now: Double, except reservation: String?) -> PostgresQuery {
        """
        SELECT coalesce(sum(amount), 0)::bigint FROM counter_entries
        WHERE counter = \(counter.name) AND window_seconds = \(counter.window)
          AND ((reservation IS NULL AND at > \(now - counter.window))
               OR (reservation IS NOT NULL AND reservation IS DISTINCT FROM \(reservation) AND at > \(now - lifetime)))
        """
    }

    public func reserve(_ charges: [CounterCharge], sessionID: String, now: Double) async throws -> CounterReservation {
        guard !charges.isEmpty else { return .reserved(used: [:]) }
        reserving.withLockedValue { _ = $0.insert(sessionID) }
        let reservation = reservation(sessionID)
        let client = spool.client
        let logger = spool.logger
        return try await spool.reachability.run("cannot reserve counters") {
            try await client.withTransaction(logger: logger) { connection in
                let ordered = charges.sorted { ($0.counter.name, $0.counter.window) < ($1.counter.name, $1.counter.window) }
                for charge in ordered {
                    let key = "\(charge.counter.name) per \(charge.counter.window)"
                    try await connection.query("SELECT pg_advisory_xact_lock(hashtextextended(\(key), 7))", logger: logger)
                }
                var usage: [CounterID: Int] = [:]
                for charge in ordered {
                    var used = 0
                    for try await row in try await connection.query(Self.usageQuery(charge.counter, now: now, except: reservation), logger: logger) {
                        used = try row.makeRandomAccess()[0].decode(Int.self)
                    }
                    if used + charge.amount > charge.limit { return CounterReservation.exceeded(charge.counter, used: used) }
                    usage[charge.counter] = used
                }
                for charge in ordered {
                    try await connection.query(
                        """
                        DELETE FROM counter_entries WHERE reservation = \(reservation)
                          AND counter = \(charge.counter.name) AND window_seconds = \(charge.counter.window)
                        """,
                        logger: logger
                    )
                    try await connection.query(
                        """
                        INSERT INTO counter_entries (counter, window_seconds, at, amount, reservation, limit_amount)
                        VALUES (\(charge.counter.name), \(charge.counter.window), \(now), \(charge.amount), \(reservation), \(charge.limit))
                        """,
                        logger: logger
                    )
                }
                return CounterReservation.reserved(used: usage)
            }
        }
    }

    /// One statement: the live entries of the counters under `prefix`, summed per
    /// counter, each with the lowest limit of those entries; the fullest first.
    public func listing(prefix: String, now: Double, maximum: Int) async throws -> (counters: [CounterUsage], total: Int) {
        let rows = try await spool.execute("cannot list counters", """
            WITH live AS (
                SELECT counter, window_seconds, sum(amount)::bigint AS used,
                       coalesce(min(limit_amount), 0)::bigint AS max_amount
                FROM counter_entries
                WHERE starts_with(counter, \(prefix))
                  AND ((reservation IS NULL AND at > \(now) - window_seconds) OR (reservation IS NOT NULL AND at > \(now - Self.lifetime)))
                GROUP BY counter, window_seconds
                HAVING sum(amount) > 0
            )
            SELECT counter, window_seconds, used, max_amount, count(*) OVER ()::bigint FROM live
            ORDER BY CASE WHEN max_amount > 0 THEN used::float8 / max_amount ELSE 'infinity'::float8 END DESC, counter, window_seconds
            LIMIT \(max(0, maximum))
            """)
        var total = 0
        let counters = try rows.map { row in
            total = try row[4].decode(Int.self)
            return CounterUsage(
                counter: CounterID(name: try row[0].decode(String.self), window: try row[1].decode(Double.self)),
                used: try row[2].decode(Int.self), limit: try row[3].decode(Int.self)
            )
        }
        return (counters, total)
    }

    public func commit(sessionID: String, now: Double) async {
        do {
            if reserving.withLockedValue({ $0.remove(sessionID) }) != nil {
                _ = try await spool.execute(
                    "cannot commit counters", prepared: CounterCommitStatement.self,
                    "UPDATE counter_entries SET reservation = NULL, at = \(now) WHERE reservation = \(reservation(sessionID))"
                )
            }
        } catch {
            spool.logger.error("counters not updated for an accepted message", metadata: ["smtp.session.id": "\(sessionID)", "error.message": "\(ErrorText.describe(error))"])
        }
        let due = lastCleanup.withLockedValue { last -> Bool in
            guard now - last >= 60 || now < last else { return false }
            last = now
            return true
        }
        if due {
            _ = try? await spool.execute(
                "cannot clean counters",
                """
                DELETE FROM counter_entries
                WHERE (reservation IS NULL AND at <= \(now) - window_seconds) OR (reservation IS NOT NULL AND at <= \(now - Self.lifetime))
                """
            )
        }
    }

    public func release(sessionID: String) async {
        guard reserving.withLockedValue({ $0.remove(sessionID) }) != nil else { return }
        do {
            _ = try await spool.execute("cannot release counters", "DELETE FROM counter_entries WHERE reservation = \(reservation(sessionID))")
        } catch {
            // Held at most for the reservation lifetime.
            spool.logger.warning("counter reservations not released", metadata: ["smtp.session.id": "\(sessionID)", "error.message": "\(ErrorText.describe(error))"])
        }
    }
}
