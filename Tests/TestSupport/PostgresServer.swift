import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL for tests and benchmarks, from Debian's `postgresql` package
/// (`/usr/lib/postgresql/<version>/bin`): `initdb` into its own ``TemporaryDirectory``,
/// then `postgres` in the foreground on `127.0.0.1:<free port>` with its unix socket
/// in the folder, stopped by PID.
///
/// PostgreSQL refuses to run as root, so when the tests run as root (CI does) the
/// folder is given to the `postgres` user and both programs are started through
/// `setpriv` as that user (`setpriv` execs, so the PID is the postmaster's own).
///
/// The superuser is ``user`` with ``password``: TCP connections on loopback need the
/// password (scram-sha-256, as a production server would), the unix socket in the
/// folder is trusted (for ``psql(_:database:)``). Each test takes a database of its
/// own with ``createDatabase()``, so one server serves a whole test process:
/// ``shared()`` starts it once, and a watchdog process stops it (and removes its
/// folder) when the test process has gone, since nothing runs at a test process's end.
public final class PostgresServer: Sendable {
    public static let user = "tollgate"
    public static let password = "tollgate-test-pw"

    /// The temporary folder: `data/` (the cluster), the socket, `postgres.log`.
    public let folder: TemporaryDirectory
    public let port: Int
    public let binFolder: String
    public var logPath: String { folder.file("postgres.log") }
    /// A file holding ``password`` (for `spool.postgres.password_file`).
    public var passwordFile: String { folder.file("superuser.pw") }
    /// The folder holding the unix socket (`.s.PGSQL.<port>`).
    public var socketFolder: String { folder.path }

    private struct State {
        var process: ChildProcess?
        var paused = false
        var watchdog: ChildProcess?
        var databases = 0
    }
    private let state = Mutex(State())
    private let asPostgresUser: Bool

    private init(folder: TemporaryDirectory, port: Int, binFolder: String, asPostgresUser: Bool) {
        self.folder = folder
        self.port = port
        self.binFolder = binFolder
        self.asPostgresUser = asPostgresUser
    }

    /// A URL for `spool.postgres.url` naming `database` (the password goes in a file).
    public func url(database: String) -> String { "postgresql://\(Self.user)@127.0.0.1:\(port)/\(database)" }

    /// The PID of the running postmaster, if any.
    public var pid: pid_t? { state.withLock { $0.process?.pid } }

    // MARK: - One per test process

    private static let sharedServer = Mutex<Task<PostgresServer, any Error>?>(nil)

    /// The server of this test process, started on first use; its watchdog stops it
    /// when the process exits.
    public static func shared() async throws -> PostgresServer {
        let task = sharedServer.withLock { current in
            if let current { return current }
            let task = Task { () throws -> PostgresServer in
                let server = try await start()
                try server.watchOver(getpid())
                return server
            }
            current = task
            return task
        }
        return try await task.value
    }

    /// A new, empty database on this server; returns its name.
    public func createDatabase() async throws -> String {
        let n = state.withLock { s in
            s.databases += 1
            return s.databases
        }
        let name = "t\(getpid())_\(n)"
        try await psql("CREATE DATABASE \(name)", database: "postgres")
        return name
    }

    // MARK: - Life cycle

    /// Finds the binaries, runs initdb and starts the server. `fsync: false` trades
    /// durability for speed where a test does not measure it.
    /// `tls`: a certificate and key (made by ``TestCertificates``) for `ssl = on`;
    /// plain connections are still accepted.
    public static func start(fsync: Bool = true, tls: TestCertificates? = nil) async throws -> PostgresServer {
        let bin = try findBinaries()
        let root = getuid() == 0
        var attempt = 0
        while true {
            attempt += 1
            let server = PostgresServer(folder: try TemporaryDirectory(label: "postgres"), port: freePort(), binFolder: bin, asPostgresUser: root)
            do {
                try await server.initialise(fsync: fsync, tls: tls)
                try await server.launch()
                return server
            } catch {
                // A "free" port taken by someone else before the server bound it: again.
                let portTaken = server.readLog().contains("Address already in use")
                await server.shutdown()
                if !portTaken || attempt >= 5 { throw error }
            }
        }
    }

    /// Fast shutdown (SIGINT: sessions are ended, the server checkpoints and exits),
    /// SIGKILL after 10 s. Idempotent.
    public func stop() async {
        let (current, wasPaused) = state.withLock { s in
            defer {
                s.process = nil
                s.paused = false
            }
            return (s.process, s.paused)
        }
        guard let current else { return }
        if wasPaused { current.signal(SIGCONT) }
        current.signal(SIGINT)
        if await current.waitForExit(timeout: 10) == nil {
            current.signal(SIGKILL)
            _ = await current.waitForExit(timeout: 5)
        }
    }

    /// Immediate shutdown (SIGQUIT), as a crash: no checkpoint, recovery at the next start.
    public func crash() async {
        let current = state.withLock { s in
            defer {
                s.process = nil
                s.paused = false
            }
            return s.process
        }
        guard let current else { return }
        current.signal(SIGCONT)
        current.signal(SIGQUIT)
        if await current.waitForExit(timeout: 10) == nil {
            current.signal(SIGKILL)
            _ = await current.waitForExit(timeout: 5)
        }
    }

    /// Starts the server again on the same port with the same data.
    public func restart() async throws {
        await stop()
        try await launch()
    }

    /// Freezes the postmaster and every backend (SIGSTOP to each): connections stay
    /// open and nothing answers, as a hung database.
    public func pause() {
        state.withLock { s in
            guard let process = s.process, !s.paused else { return }
            for pid in [process.pid] + Self.children(of: process.pid) { kill(pid, SIGSTOP) }
            s.paused = true
        }
    }

    /// Thaws the server after ``pause()``.
    public func resume() {
        state.withLock { s in
            guard let process = s.process, s.paused else { return }
            for pid in [process.pid] + Self.children(of: process.pid) { kill(pid, SIGCONT) }
            s.paused = false
        }
    }

    /// Stops the server and removes the folder.
    public func shutdown() async {
        await stop()
        state.withLock { s in
            s.watchdog?.signal(SIGKILL)
            s.watchdog = nil
        }
        folder.remove()
    }

    // MARK: - Tools

    /// Runs SQL through `psql` on the unix socket; returns its unaligned output.
    @discardableResult
    public func psql(_ sql: String, database: String) async throws -> String {
        let result = try await ChildProcess.runAsync(
            binFolder + "/psql",
            ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", socketFolder, "-p", "\(port)", "-U", Self.user, "-d", database, "-c", sql],
            timeout: 30
        )
        guard result.status == 0 else {
            throw PostgresServerError("psql -c \(sql.prefix(200)) exited with \(result.status): \(result.stderr.suffix(2000))")
        }
        return result.stdout.trimmingTrailingNewlines()
    }

    public func readLog() -> String { TestFiles.readString(logPath) ?? "" }

    // MARK: - Steps

    private static func findBinaries() throws -> String {
        let base = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).compactMap(Int.init).sorted()
        for version in versions.reversed() {
            let bin = "\(base)/\(version)/bin"
            if access(bin + "/postgres", X_OK) == 0, access(bin + "/initdb", X_OK) == 0 { return bin }
        }
        throw PostgresServerError("PostgreSQL is not installed (no \(base)/<version>/bin/postgres): run scripts/install-deps.sh test")
    }

    private func initialise(fsync: Bool, tls: TestCertificates?) async throws {
        try TestFiles.write(Self.password + "\n", to: passwordFile)
        try await runAsServerUser(binFolder + "/initdb", [
            "-D", folder.file("data"), "-U", Self.user, "--pwfile", passwordFile,
            "--auth-local", "trust", "--auth-host", "scram-sha-256",
            "-E", "UTF8", "--locale", "C", "--no-sync", "--no-instructions",
        ])
        var settings = [
            "listen_addresses = '127.0.0.1'",
            "port = \(port)",
            "unix_socket_directories = '\(socketFolder)'",
            "fsync = \(fsync ? "on" : "off")",
            "synchronous_commit = on",
            "max_connections = 200",
            "shared_buffers = 64MB",
            "log_min_messages = warning",
            "log_connections = off",
        ]
        if let tls {
            // The key must belong to the server's user and be 0600: copies in its folder.
            let certificate = folder.file("data/server.crt"), key = folder.file("data/server.key")
            try TestFiles.write(TestFiles.readString(tls.certificatePath) ?? "", to: certificate)
            try TestFiles.write(TestFiles.readString(tls.keyPath) ?? "", to: key)
            chmod(key, 0o600)
            settings += ["ssl = on", "ssl_cert_file = '\(certificate)'", "ssl_key_file = '\(key)'"]
        }
        let conf = folder.file("data/postgresql.conf")
        let existing = TestFiles.readString(conf) ?? ""
        try TestFiles.write(existing + "\n# Tollgate test harness\n" + settings.joined(separator: "\n") + "\n", to: conf)
        if asPostgresUser { try chownTree(folder.file("data")) }
    }

    private func launch() async throws {
        let child = try ChildProcess.spawn(
            asPostgresUser ? "/usr/bin/setpriv" : binFolder + "/postgres",
            (asPostgresUser ? serverUserPrefix() + [binFolder + "/postgres"] : []) + ["-D", folder.file("data")],
            workingDirectory: folder.path,
            stdoutPath: logPath,
            stderrPath: logPath
        )
        state.withLock { $0.process = child }
        // Ready when it answers a query on its socket; given up early when it has exited.
        let deadline = Self.now() + 20
        while Self.now() < deadline, child.isRunning {
            if (try? await ChildProcess.runAsync(binFolder + "/pg_isready", ["-q", "-h", socketFolder, "-p", "\(port)"], timeout: 5))?.status == 0 {
                return
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        let log = readLog()
        await stop()
        throw PostgresServerError("postgres did not become ready on port \(port) within 20 s; log: \(log.suffix(2000))")
    }

    /// A `sh` loop that stops the server by PID (and removes the folder) once `owner`
    /// (the test process) has gone.
    private func watchOver(_ owner: pid_t) throws {
        guard let pid else { return }
        let script = """
            while kill -0 \(owner) 2>/dev/null; do sleep 1; done
            kill -INT \(pid) 2>/dev/null
            for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 \(pid) 2>/dev/null || break; sleep 1; done
            kill -KILL \(pid) 2>/dev/null
            case '\(folder.path)' in \(TemporaryDirectory.prefix)*) rm -rf '\(folder.path)' ;; esac
            """
        let watchdog = try ChildProcess.spawn("/bin/sh", ["-c", script], newProcessGroup: true)
        state.withLock { $0.watchdog = watchdog }
    }

    private func serverUserPrefix() -> [String] {
        ["--reuid=postgres", "--regid=postgres", "--init-groups", "--reset-env", "--"]
    }

    private func runAsServerUser(_ executable: String, _ arguments: [String]) async throws {
        if asPostgresUser { try chownTree(folder.path) }
        let result = try await ChildProcess.runAsync(
            asPostgresUser ? "/usr/bin/setpriv" : executable,
            (asPostgresUser ? serverUserPrefix() + [executable] : []) + arguments,
            timeout: 60,
            workingDirectory: folder.path
        )
        guard result.status == 0 else {
            throw PostgresServerError("\(executable) exited with \(result.status): \(result.stdout.suffix(1500)) \(result.stderr.suffix(1500))")
        }
    }

    /// Gives the folder (and what is in it) to the `postgres` user.
    private func chownTree(_ path: String) throws {
        guard let entry = getpwnam("postgres") else { throw PostgresServerError("there is no postgres user (is the postgresql package installed?)") }
        let uid = entry.pointee.pw_uid
        let gid = entry.pointee.pw_gid
        _ = chown(path, uid, gid)
        for name in FileManager.default.subpaths(atPath: path) ?? [] { _ = chown(path + "/" + name, uid, gid) }
    }

    /// The processes whose parent is `parent` (the backends of a postmaster), from `/proc/*/stat`.
    private static func children(of parent: pid_t) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name -> pid_t? in
            guard let pid = pid_t(name), let stat = TestFiles.readString("/proc/\(name)/stat") else { return nil }
            // "pid (comm) state ppid …": the command may hold spaces and parentheses.
            guard let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && pid_t(fields[1]) == parent ? pid : nil
        }
    }

    private static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

public struct PostgresServerError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension String {
    fileprivate func trimmingTrailingNewlines() -> String {
        var s = Substring(self)
        while s.last == "\n" || s.last == "\r" { s = s.dropLast() }
        return String(s)
    }
}
