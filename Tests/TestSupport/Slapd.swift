#if canImport(Glibc)
import Glibc
#endif

/// A throwaway OpenLDAP `slapd` for integration tests: its own temporary folder,
/// cn=config loaded with `slapadd -n 0` from `demo/ldap/slapd-config.ldif`
/// (back_mdb, the memberof overlay, schemas core/cosine/nis/inetorgperson),
/// listening only on `ldap://127.0.0.1:<free port>`, with the entries of
/// `demo/ldap/directory.ldif` added online with `ldapadd` so that memberOf is filled.
///
/// Self-contained (posix_spawn, waitpid; no Foundation.Process, which can hang
/// in tests): slapd runs in the foreground (`-d stats`) as our child, its log in
/// `<folder>/slapd.log`; ``bindRequests`` and ``searchRequests`` count the
/// operations it has seen. ``pause()``/``resume()`` freeze it with SIGSTOP/SIGCONT
/// (connections are accepted by the kernel but never answered); ``stop()`` and
/// ``restart()`` take it away and bring it back on the same port with the same data.
///
/// With `tls: true` it also gets a certificate for 127.0.0.1 from a throwaway CA
/// (``caFile``, made with the `openssl` command), offers StartTLS on ``uri`` and
/// listens on ``ldapsURI``.
public final class Slapd: @unchecked Sendable {
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
    public let folder: String
    public let port: Int
    /// The ldaps:// port, with `tls: true`.
    public let tlsPort: Int?
    public var uri: String { "ldap://127.0.0.1:\(port)" }
    public var ldapsURI: String? { tlsPort.map { "ldaps://127.0.0.1:\($0)" } }
    /// The PEM file of the CA that signed slapd's certificate, with `tls: true`.
    public var caFile: String? { tlsPort == nil ? nil : folder + "/ca.pem" }
    public var logPath: String { folder + "/slapd.log" }

    private let lock = SlapdLock()
    private var process: pid_t?
    private var paused = false
    /// Log lines from runs before the current one (a restart truncates the log).
    private var earlierLog = ""

    private init(folder: String, port: Int, tlsPort: Int?) {
        self.folder = folder
        self.port = port
        self.tlsPort = tlsPort
    }

    /// Creates the folder and configuration, starts slapd and loads `ldif`
    /// (default: `demo/ldap/directory.ldif`). Throws if any step fails.
    public static func start(ldif: String? = nil, tls: Bool = false) async throws -> Slapd {
        // A "free" port can be taken by someone's outgoing connection before slapd
        // binds it: try a few.
        var attempt = 0
        while true {
            attempt += 1
            let folder = try makeTemporaryFolder()
            let port = try freeLoopbackPort()
            let slapd = Slapd(folder: folder, port: port, tlsPort: tls ? try freeLoopbackPort() : nil)
            do {
                try await slapd.configure()
                try await slapd.launch()
                try await slapd.runTool("/usr/bin/ldapadd", [
                    "-x", "-H", slapd.uri, "-D", rootDN, "-w", rootPassword, "-f", ldif ?? demoFolder + "/directory.ldif",
                ])
                return slapd
            } catch {
                let portTaken = slapd.readLog().contains("Address already in use")
                await slapd.shutdown()
                if !portTaken || attempt >= 5 { throw error }
            }
        }
    }

    /// Stops slapd (SIGCONT first if paused, then SIGTERM, SIGKILL after 5 s). Idempotent.
    public func stop() async {
        let (current, wasPaused): (pid_t?, Bool) = lock.withLock {
            defer {
                process = nil
                paused = false
            }
            return (process, paused)
        }
        guard let current else { return }
        if wasPaused { _ = kill(current, SIGCONT) }
        _ = kill(current, SIGTERM)
        let deadline = monotonicNow() + 5
        while !reap(current) {
            if monotonicNow() > deadline {
                _ = kill(current, SIGKILL)
                var status: Int32 = 0
                _ = waitpid(current, &status, 0)
                return
            }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
    }

    /// Starts slapd again on the same port with the same database.
    public func restart() async throws {
        await stop()
        let log = readLog()
        lock.withLock { earlierLog += log }
        try await launch()
    }

    /// Freezes slapd (SIGSTOP): its socket stays open, nothing answers.
    public func pause() {
        lock.withLock {
            guard let process, !paused else { return }
            _ = kill(process, SIGSTOP)
            paused = true
        }
    }

    /// Thaws slapd after ``pause()``.
    public func resume() {
        lock.withLock {
            guard let process, paused else { return }
            _ = kill(process, SIGCONT)
            paused = false
        }
    }

    /// The PID of the running slapd, if any.
    public var pid: pid_t? { lock.withLock { process } }

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
        removeTree(folder)
    }

    deinit {
        if let process {
            _ = kill(process, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(process, &status, 0)
        }
    }

    // MARK: - Steps

    private func configure() async throws {
        let dir = folder
        try makeDirectory(dir + "/slapd.d")
        try makeDirectory(dir + "/data")
        guard let template = readFile(Self.demoFolder + "/slapd-config.ldif") else {
            throw SlapdError("cannot read \(Self.demoFolder)/slapd-config.ldif")
        }
        var config = template.replacingAll("@DIR@", with: dir)
        if tlsPort != nil {
            try await makeCertificates()
            config = config.replacingAll(
                "olcLogLevel: stats\n",
                with: "olcLogLevel: stats\nolcTLSCACertificateFile: \(dir)/ca.pem\n"
                    + "olcTLSCertificateFile: \(dir)/server.pem\nolcTLSCertificateKeyFile: \(dir)/server.key\n"
            )
        }
        try writeFile(dir + "/config.ldif", config)
        try await runTool("/usr/sbin/slapadd", ["-n", "0", "-F", dir + "/slapd.d", "-l", dir + "/config.ldif"])
    }

    private func launch() async throws {
        var listeners = uri + "/"
        if let ldapsURI { listeners += " " + ldapsURI + "/" }
        let child = try spawn(
            "/usr/sbin/slapd",
            ["-F", folder + "/slapd.d", "-h", listeners, "-d", "stats"],
            outputPath: logPath
        )
        lock.withLock { process = child }
        // Ready when it accepts connections; given up early when it has exited.
        let deadline = monotonicNow() + 10
        while !Self.canConnect(port: port), monotonicNow() < deadline {
            if (readFile(logPath) ?? "").contains("slapd stopped") { break }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        guard Self.canConnect(port: port) else {
            await stop()
            throw SlapdError("slapd did not listen on port \(port) within 10 s; log: \(readLog().suffix(2000))")
        }
    }

    /// A CA and a certificate for 127.0.0.1 / localhost signed by it (P-256, 2 days).
    private func makeCertificates() async throws {
        let dir = folder
        let openssl = "/usr/bin/openssl"
        try await runTool(openssl, [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", dir + "/ca.key", "-out", dir + "/ca.pem", "-days", "2", "-subj", "/CN=Tollgate Test LDAP CA",
        ])
        try await runTool(openssl, [
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", dir + "/server.key", "-out", dir + "/server.csr", "-subj", "/CN=127.0.0.1",
        ])
        try writeFile(
            dir + "/server.ext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        )
        try await runTool(openssl, [
            "x509", "-req", "-in", dir + "/server.csr", "-CA", dir + "/ca.pem", "-CAkey", dir + "/ca.key",
            "-CAcreateserial", "-out", dir + "/server.pem", "-days", "2", "-extfile", dir + "/server.ext",
        ])
    }

    /// Runs a command to completion (polling, so no cooperative thread blocks);
    /// throws with its output if it fails.
    @discardableResult
    func runTool(_ executable: String, _ arguments: [String]) async throws -> String {
        let output = folder + "/tool-\(arguments.count)-\(UInt32.random(in: 0...UInt32.max)).out"
        defer { unlink(output) }
        let pid = try spawn(executable, arguments, outputPath: output)
        var delay: UInt64 = 1_000_000
        var status: Int32 = 0
        while true {
            let rc = waitpid(pid, &status, WNOHANG)
            if rc == pid { break }
            if rc < 0 && errno != EINTR {
                throw SlapdError("waitpid \(executable): \(String(cString: strerror(errno)))")
            }
            try? await Task.sleep(nanoseconds: delay)
            delay = min(delay * 2, 20_000_000)
        }
        // WIFEXITED / WEXITSTATUS, else 128 + signal
        status = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let text = readFile(output) ?? ""
        guard status == 0 else {
            throw SlapdError("\(executable) \(arguments.joined(separator: " ")) exited with \(status): \(text)")
        }
        return text
    }

    private func readLog() -> String { readFile(logPath) ?? "" }

    private func countLogLines(_ matches: (Substring) -> Bool) -> Int {
        let earlier = lock.withLock { earlierLog }
        return (earlier + readLog()).split(separator: "\n").filter(matches).count
    }

    private static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

public struct SlapdError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Small POSIX helpers

private final class SlapdLock: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}

/// posix_spawn with default signal dispositions and an empty mask (children of a
/// test inherit libdispatch's blocked mask otherwise, and would ignore SIGTERM),
/// stdin from /dev/null, stdout and stderr to `outputPath`.
private func spawn(_ executable: String, _ arguments: [String], outputPath: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for arg in argv { free(arg) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
    guard rc == 0 else { throw SlapdError("cannot start \(executable): \(String(cString: strerror(rc)))") }
    return pid
}

/// Whether `pid` has exited (and is now reaped).
private func reap(_ pid: pid_t) -> Bool {
    var status: Int32 = 0
    let rc = waitpid(pid, &status, WNOHANG)
    return rc == pid || (rc < 0 && errno == ECHILD)
}

private func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1_000_000_000
}

private func makeTemporaryFolder() throws -> String {
    var template = Array("/tmp/tollgate-slapd-XXXXXX".utf8CString)
    guard let path = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw SlapdError("mkdtemp: \(String(cString: strerror(errno)))")
    }
    return String(cString: path)
}

/// Removes a folder tree that this harness made (files and folders only).
private func removeTree(_ path: String) {
    guard let dir = opendir(path) else {
        unlink(path)
        return
    }
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
        }
        if name == "." || name == ".." { continue }
        let child = path + "/" + name
        var info = stat()
        if lstat(child, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
            removeTree(child)
        } else {
            unlink(child)
        }
    }
    closedir(dir)
    rmdir(path)
}

/// A loopback port that was free a moment ago (the kernel's choice for port 0).
private func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw SlapdError("socket: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard bound == 0 else { throw SlapdError("bind: \(String(cString: strerror(errno)))") }
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw SlapdError("getsockname: \(String(cString: strerror(errno)))") }
    return Int(UInt16(bigEndian: address.sin_port))
}

private func makeDirectory(_ path: String) throws {
    guard mkdir(path, 0o700) == 0 || errno == EEXIST else {
        throw SlapdError("mkdir \(path): \(String(cString: strerror(errno)))")
    }
}

private func readFile(_ path: String) -> String? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count <= 0 { break }
        bytes += buffer[0..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}

private func writeFile(_ path: String, _ text: String) throws {
    guard let file = fopen(path, "wb") else { throw SlapdError("cannot write \(path)") }
    defer { fclose(file) }
    let bytes = Array(text.utf8)
    guard fwrite(bytes, 1, bytes.count, file) == bytes.count else { throw SlapdError("cannot write \(path)") }
}

extension String {
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        replacing(target, with: replacement)
    }
}
