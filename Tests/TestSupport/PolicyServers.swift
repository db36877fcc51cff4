#if canImport(Glibc)
import Glibc
#endif

/// A throwaway postfwd (Debian's `postfwd`, postfwd2) for the postfix-policy tests:
/// its rule file, pid file and cache socket in its own ``TemporaryDirectory``,
/// listening on `127.0.0.1:<free port>`, running as root (no privilege drop), DNS
/// checks off. postfwd2 always daemonizes (a master, a cache and a policy daemon, in
/// one session whose id is the master's PID): ``stop()`` signals that process group,
/// read from its pid file, and nothing else.
public final class Postfwd: Sendable {
    public let folder: TemporaryDirectory
    public let port: Int
    public var address: String { "127.0.0.1:\(port)" }
    public var pidFile: String { folder.file("postfwd.pid") }

    private init(folder: TemporaryDirectory, port: Int) {
        self.folder = folder
        self.port = port
    }

    /// Writes `rules` (postfwd's rule syntax, one rule a line) and starts postfwd2.
    public static func start(rules: String) async throws -> Postfwd {
        var attempt = 0
        while true {
            attempt += 1
            let server = Postfwd(folder: try TemporaryDirectory(label: "postfwd"), port: freePort())
            try TestFiles.write(Array(rules.utf8), to: server.folder.file("rules.cf"))
            let run = try await ChildProcess.runAsync("postfwd2", [
                "--daemon", "--nodns", "--file", server.folder.file("rules.cf"),
                "--server_socket", "tcp:127.0.0.1:\(server.port)",
                "--cache_proto", "unix", "--cache_port", server.folder.file("cache.sock"),
                "--pidfile", server.pidFile, "--user", "root", "--group", "root",
            ], timeout: 30)
            if run.status == 0, await waitForPort(server.port, timeout: 10) { return server }
            await server.shutdown()
            if attempt >= 3 {
                throw TestSupportError(.processFailed, "postfwd2 did not start (status \(run.status)): \(run.stdout) \(run.stderr)")
            }
        }
    }

    /// The master's PID, from its pid file.
    public var pid: pid_t? {
        guard let text = TestFiles.readString(pidFile), let pid = Int32(String(text.filter { $0.isNumber })), pid > 1 else { return nil }
        return pid
    }

    /// Stops every postfwd2 process of this instance (SIGTERM to its session's
    /// process group, SIGKILL after 3 s) and waits until its port is closed.
    public func stop() async {
        guard let pid else { return }
        // The group exists only if the master made its own session (it does: setsid).
        guard getpgid(pid) == pid else { return }
        _ = kill(-pid, SIGTERM)
        if !(await waitUntil(timeout: 3, { !canConnect(port: port) && kill(-pid, 0) != 0 })) {
            _ = kill(-pid, SIGKILL)
            _ = await waitUntil(timeout: 3) { !canConnect(port: port) }
        }
        unlink(pidFile)
    }

    public func shutdown() async {
        await stop()
        folder.remove()
    }
}

/// A throwaway policyd-rate-limit (Debian's `policyd-rate-limit`): its YAML
/// configuration (the `/etc/policyd-rate-limit.yaml` format), sqlite database and pid
/// file in its own folder, listening on `127.0.0.1:<free port>`, in the foreground as
/// a ``ChildProcess`` with `debug: True` (every request and answer on stderr, in
/// `<folder>/policyd.log`).
public final class PolicydRateLimit: Sendable {
    public let folder: TemporaryDirectory
    public let port: Int
    private let process: ChildProcess
    public var address: String { "127.0.0.1:\(port)" }
    public var log: String { TestFiles.readString(folder.file("policyd.log")) ?? "" }

    private init(folder: TemporaryDirectory, port: Int, process: ChildProcess) {
        self.folder = folder
        self.port = port
        self.process = process
    }

    /// Starts it with `limits` (`[count, seconds]` pairs), counting by envelope sender.
    public static func start(limits: [(Int, Int)], failAction: String = "defer_if_permit Rate limit reach, retry later") async throws -> PolicydRateLimit {
        var attempt = 0
        while true {
            attempt += 1
            let folder = try TemporaryDirectory(label: "policyd")
            let port = freePort()
            let config = """
                debug: True
                user: "root"
                group: "root"
                pidfile: "\(folder.file("policyd.pid"))"
                sqlite_config:
                    database: "\(folder.file("db.sqlite3"))"
                backend: 0
                SOCKET: ["127.0.0.1", \(port)]
                limits:
                \(limits.map { "    - [\($0.0), \($0.1)]" }.joined(separator: "\n"))
                limits_by_id: {}
                limit_by_sasl: True
                limit_by_sender: True
                limit_by_ip: False
                limited_networks: []
                success_action: "dunno"
                fail_action: "\(failAction)"
                db_error_action: "dunno"
                report: False
                delay_to_close: 300

                """
            try TestFiles.write(Array(config.utf8), to: folder.file("policyd-rate-limit.yaml"))
            let process = try ChildProcess.spawn(
                "policyd-rate-limit", ["--file", folder.file("policyd-rate-limit.yaml")],
                stdoutPath: folder.file("policyd.log"), stderrPath: folder.file("policyd.log")
            )
            let server = PolicydRateLimit(folder: folder, port: port, process: process)
            if await waitForPort(port, timeout: 15) { return server }
            let log = server.log
            await server.shutdown()
            if attempt >= 3 { throw TestSupportError(.processFailed, "policyd-rate-limit did not start: \(log)") }
        }
    }

    public func shutdown() async {
        _ = await process.terminate(timeout: 5)
        folder.remove()
    }
}
