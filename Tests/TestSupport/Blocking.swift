import NIOPosix

/// Runs blocking test helpers (``SMTPTestClient``, ``Swaks``, sink start-up)
/// from async tests without holding a thread of the cooperative pool.
///
/// The cooperative pool has only as many threads as cores (2 here); two
/// parallel tests blocked in a socket read can starve the code under test if
/// that code needs the pool. `try await Blocking.run { … }` moves the work to a
/// private thread pool of 8 threads.
public enum Blocking {
    private static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 8)
        pool.start()
        return pool
    }()

    /// Runs `body` on the private thread pool and returns its result.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(body)
    }
}
