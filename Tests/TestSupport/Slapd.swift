import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway OpenLDAP `slapd` for integration tests: its own ``TemporaryDirectory``,
/// cn=config loaded with `slapadd -n 0` from `demo/ldap/slapd-config.ldif`
/// (back_mdb, the memberof overlay, schemas core/cosine/nis/inetorgperson),
/// listening only on `ldap://127.0.0.1:<free port>`, with the entries of
/// `demo/ldap/directory.ldif` added online with `ldapadd` so that memberOf is filled.
///
/// slapd runs in the foreground (`-d stats`) as a ``ChildProcess``, its log in
/// `<folder>/slapd.log`; ``bindRequests`` and ``searchRequests`` count the
/// operations it has seen. ``pause()``/``resume()`` freeze it with SIGSTOP/SIGCONT
/// (connections are accepted by the kernel but never answered); ``stop()`` and
/// ``restart()`` take it away and bring it back on the same port with the same data.
///
/// With `tls: true` it also gets a certificate for 127.0.0.1 from a throwaway CA
/// (``caFile``, made with the `openssl` command), offers StartTLS on ``uri`` and
/// listens on ``ldapsURI``.
public final class Slapd: Sendable {
    public static let baseDN = "dc=example,dc=com"
    public static let peopleDN = "ou=people,dc=example,dc=com"
    public static let serviceDN = "cn=relay,ou=services,dc=example,dc=com"
    public static let servicePassword = "relay-pw"
    public static let rootDN = "cn=admin,dc=example,dc=com"
    public static let rootPassword = "admin-pw"

    /// `demo/ldap` of this repository.
    public static let demoFolder: String = {
        var path = #filePath
        for _ in 0..<3 {  // Tests/TestSupport/Slapd.swift → repository root
            if let slash = path.lastIndex(of: "/") { path = String(path[..<slash]) }
        }
        return path + "/demo/ldap"
    }()

    /// The temporary folder: slapd.d/, data/, slapd.log, certificates.
    public let folder: TemporaryDirectory
    public let port: Int
    /// The ldaps:// port, with `tls: true`.
    public let tlsPort: Int?
    public var uri: String { "ldap://127.0.0.1:\(port)" }
    public var ldapsURI: String? { tlsPort.map { "ldaps://127.0.0.1:\($0)" } }
    /// The PEM file of the CA that signed slapd's certificate, with `tls: true`.
    public var caFile: String? { tlsPort == nil ? nil : folder.file("ca.pem") }
    public var logPath: String { folder.file("slapd.log") }

    private struct State {
        var process: ChildProcess?
        var paused = false
        /// Log text of runs before the current one (a restart truncates the log).
        var earlierLog = ""
    }
    private let state = Mutex(State())

    private init(folder: TemporaryDirectory, port: Int, tlsPort: Int?) {
        self.folder = folder
        self.port = port
        self.tlsPort = tlsPort
    }

    /// The `ldap` stage's settings for this server (URI, service bind, base) as YAML
    /// lines; every line after the first is indented by `indent` spaces, so that it can
    /// be interpolated into a configuration literal under `settings:`.
    public func ldapSettings(indent: Int) -> String {
        ["uri: \(uri)", "bind_dn: \(Self.serviceDN)", "bind_password: \(Self.servicePassword)", "base: \(Self.peopleDN)"]
            .joined(separator: "\n" + String(repeating: " ", count: indent))
    }

    /// Creates the folder and configuration, starts slapd and loads `ldif`
    /// (default: `demo/ldap/directory.ldif`). Throws if any step fails.
    public static func start(ldif: String? = nil, tls: Bool = false) async throws -> Slapd {
        // A "free" port can be taken by someone's outgoing connection before slapd
        // binds it: try a few.
        var attempt = 0
        while true {
            attempt += 1
            let slapd = Slapd(
                folder: try TemporaryDirectory(label: "slapd"),
                port: freePort(),
                tlsPort: tls ? freePort() : nil
            )
            do {
                try await slapd.configure()
                try await slapd.launch()
                try await slapd.runTool("ldapadd", [
                    "-x", "-H", slapd.uri, "-D", rootDN, "-w", rootPassword, "-f", ldif ?? demoFolder + "/directory.ldif",
                ])
                return slapd
            } catch {
                // Worth another try: the port was taken, or a tool was killed by a
                // signal from outside (seen once while other suites ran).
                let portTaken = slapd.readLog().contains("Address already in use")
                let killed = (error as? SlapdError)?.killedBySignal ?? false
                await slapd.shutdown()
                if !(portTaken || killed) || attempt >= 5 { throw error }
            }
        }
    }

    /// Stops slapd (SIGCONT first if paused, then SIGTERM, SIGKILL after 5 s). Idempotent.
    public func stop() async {
        let (current, wasPaused) = state.withLock { state in
            defer {
                state.process = nil
                state.paused = false
            }
            return (state.process, state.paused)
        }
        guard let current else { return }
        if wasPaused { current.signal(SIGCONT) }
        await current.terminate(timeout: 5)
    }

    /// Starts slapd again on the same port with the same database.
    public func restart() async throws {
        await stop()
        let log = readLog()
        state.withLock { $0.earlierLog += log }
        try await launch()
    }

    /// Freezes slapd (SIGSTOP): its sockets stay open, nothing answers.
    public func pause() {
        state.withLock { state in
            guard let process = state.process, !state.paused else { return }
            process.signal(SIGSTOP)
            state.paused = true
        }
    }

    /// Thaws slapd after ``pause()``.
    public func resume() {
        state.withLock { state in
            guard let process = state.process, state.paused else { return }
            process.signal(SIGCONT)
            state.paused = false
        }
    }

    /// The PID of the running slapd, if any.
    public var pid: pid_t? { state.withLock { $0.process?.pid } }

    /// Bind requests slapd has received (all runs), from its stats log.
    public var bindRequests: Int { countLogLines { $0.contains(" BIND dn=") && $0.contains(" method=") } }
    /// Bind requests for `dn`.
    public func bindRequests(dn: String) -> Int {
        countLogLines { $0.contains(" BIND dn=\"\(dn)\"") && $0.contains(" method=") }
    }
    /// Search requests slapd has received (all runs).
    public var searchRequests: Int { countLogLines { $0.contains(" SRCH base=") } }

    /// Stops slapd and removes the folder.
    public func shutdown() async {
        await stop()
        folder.remove()
    }

    deinit {
        // ChildProcess kills and reaps on deinit; a stopped process needs SIGCONT first.
        state.withLock { state in
            if state.paused { state.process?.signal(SIGCONT) }
        }
    }

    // MARK: - Steps

    private func configure() async throws {
        try folder.subdirectory("slapd.d")
        try folder.subdirectory("data")
        guard let template = TestFiles.readString(Self.demoFolder + "/slapd-config.ldif") else {
            throw SlapdError("cannot read \(Self.demoFolder)/slapd-config.ldif")
        }
        var config = template.replacing("@DIR@", with: folder.path)
        if tlsPort != nil {
            try await makeCertificates()
            config = config.replacing(
                "olcLogLevel: stats\n",
                with: "olcLogLevel: stats\nolcTLSCACertificateFile: \(folder.file("ca.pem"))\n"
                    + "olcTLSCertificateFile: \(folder.file("server.pem"))\n"
                    + "olcTLSCertificateKeyFile: \(folder.file("server.key"))\n"
            )
        }
        try TestFiles.write(config, to: folder.file("config.ldif"))
        try await runTool("slapadd", ["-n", "0", "-F", folder.file("slapd.d"), "-l", folder.file("config.ldif")])
    }

    private func launch() async throws {
        var listeners = uri + "/"
        if let ldapsURI { listeners += " " + ldapsURI + "/" }
        let child = try ChildProcess.spawn(
            "slapd",
            ["-F", folder.file("slapd.d"), "-h", listeners, "-d", "stats"],
            workingDirectory: folder.path,
            stdoutPath: logPath,
            stderrPath: logPath
        )
        state.withLock { $0.process = child }
        // Ready when it accepts connections; given up early when it has exited.
        let port = self.port
        _ = await waitUntil(timeout: 10, interval: 0.01) {
            canConnect(port: port) || !child.isRunning
        }
        guard canConnect(port: port) else {
            await stop()
            throw SlapdError("slapd did not listen on port \(port) within 10 s; log: \(readLog().suffix(2000))")
        }
    }

    /// A CA and a certificate for 127.0.0.1 / localhost signed by it (P-256, 2 days).
    private func makeCertificates() async throws {
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        try await runTool("openssl", ["req", "-x509"] + ec + [
            "-keyout", folder.file("ca.key"), "-out", folder.file("ca.pem"), "-days", "2",
            "-subj", "/CN=Tollgate Test LDAP CA",
        ])
        try await runTool("openssl", ["req"] + ec + [
            "-keyout", folder.file("server.key"), "-out", folder.file("server.csr"), "-subj", "/CN=127.0.0.1",
        ])
        try TestFiles.write(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
            to: folder.file("server.ext")
        )
        try await runTool("openssl", [
            "x509", "-req", "-in", folder.file("server.csr"), "-CA", folder.file("ca.pem"),
            "-CAkey", folder.file("ca.key"), "-CAcreateserial", "-out", folder.file("server.pem"),
            "-days", "2", "-extfile", folder.file("server.ext"),
        ])
    }

    /// Runs a command to completion (without blocking a cooperative thread);
    /// throws with its output if it fails.
    @discardableResult
    func runTool(_ executable: String, _ arguments: [String]) async throws -> String {
        let result = try await ChildProcess.runAsync(executable, arguments, timeout: 30, workingDirectory: folder.path)
        guard result.status == 0 else {
            var error = SlapdError(
                "\(executable) \(arguments.joined(separator: " ")) exited with \(result.status): "
                    + "\(result.stdout.suffix(2000)) \(result.stderr.suffix(2000))"
            )
            error.killedBySignal = result.status > 128
            throw error
        }
        return result.stdout
    }

    private func readLog() -> String { TestFiles.readString(logPath) ?? "" }

    private func countLogLines(_ matches: (Substring) -> Bool) -> Int {
        let earlier = state.withLock { $0.earlierLog }
        return (earlier + readLog()).split(separator: "\n").filter(matches).count
    }
}

public struct SlapdError: Error, CustomStringConvertible {
    public var description: String
    /// A tool ended by a signal rather than by failing.
    public var killedBySignal = false
    init(_ description: String) { self.description = description }
}
