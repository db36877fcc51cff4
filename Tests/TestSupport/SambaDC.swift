import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway Samba Active Directory domain controller for integration tests:
/// the domain `example.test` (NetBIOS `EXAMPLE`), provisioned with
/// `samba-tool domain provision --use-rfc2307` into a temporary folder and loaded
/// offline (`ldbadd`/`ldbmodify` on its `sam.ldb`) with the users of
/// ``SambaDC/Account`` (see `SambaDC+Directory.swift`).
///
/// Provisioning is slow (20 s to 3 min on this machine, most of it waiting for the
/// disk), so it happens once per test process, into a template folder; every
/// ``start()`` copies the template and runs its own `samba -i -M single` on a
/// loopback address of its own (`127.0.0.2`, `127.0.0.3`, …: Samba's LDAP ports
/// are fixed at 389 and 636, so two DCs need two addresses; `interfaces =
/// 127.0.0.N/8` with `bind interfaces only`), with only the `ldap` service
/// (no DNS, KDC, SMB or winbind). The copies are the same domain with the same
/// accounts and passwords, which is what a relay sees of two replicating DCs.
///
/// TLS: a certificate for the loopback addresses from a throwaway CA
/// (``caFile``); Samba refuses simple binds on plain `ldap://` (strong auth
/// required), so logins use ``ldapsURI`` or StartTLS on ``ldapURI``.
///
/// Stopped by PID (``stop()``; SIGTERM to its process group, SIGKILL after 5 s);
/// every wait is bounded. The shared DC of ``shared()`` and the template are
/// removed when the test process exits.
public final class SambaDC: Sendable {
    public static let realm = "EXAMPLE.TEST"
    public static let netbiosDomain = "EXAMPLE"
    public static let baseDN = "DC=example,DC=test"
    public static let adminPassword = "Admin-Pa55word!"

    /// The instance folder: etc/smb.conf, private/, state/, samba.log.
    public let folder: TemporaryDirectory
    /// The loopback address this DC listens on.
    public let address: String
    public var ldapURI: String { "ldap://\(address)" }
    public var ldapsURI: String { "ldaps://\(address)" }
    /// The CA that signed the DC's certificate (PEM).
    public let caFile: String
    public var logPath: String { folder.file("samba.log") }

    private let process = Mutex<ChildProcess?>(nil)

    private init(folder: TemporaryDirectory, address: String, caFile: String) {
        self.folder = folder
        self.address = address
        self.caFile = caFile
    }

    /// How long the one provisioning of this process took, once it has run.
    public static var provisionSeconds: Double? { SambaTemplate.seconds.withLock { $0 } }

    /// One DC shared by all tests of the process that only read the directory
    /// (started on first use, killed at exit). Do not stop it.
    public static func shared() async throws -> SambaDC {
        try await SharedSambaDC.instance.value
    }

    /// A DC of its own (a copy of the template on the next free loopback
    /// address), for tests that stop or restart it. Call ``shutdown()``.
    public static func start() async throws -> SambaDC {
        let template = try await SambaTemplate.folder.value
        let address = try SambaAddresses.next()
        let dc = SambaDC(folder: try TemporaryDirectory(label: "samba-dc"), address: address, caFile: template + "/tls/ca.pem")
        do {
            let copied = try await ChildProcess.runAsync("cp", ["-a", template + "/.", dc.folder.path], timeout: 60)
            guard copied.status == 0 else { throw SambaError("cp failed: \(copied.stderr.suffix(500))") }
            try TestFiles.write(SambaTemplate.smbConf(folder: dc.folder.path, address: address), to: dc.folder.file("etc/smb.conf"))
            try await dc.launch()
            return dc
        } catch {
            await dc.shutdown()
            throw error
        }
    }

    /// Stops samba (SIGTERM to its group, SIGKILL after 5 s). Idempotent.
    public func stop() async {
        let current = process.withLock { state in
            defer { state = nil }
            return state
        }
        guard let current else { return }
        await current.terminate(timeout: 5)
    }

    /// Starts samba again on the same address with the same database.
    public func restart() async throws {
        await stop()
        try await launch()
    }

    /// The PID of the running samba, if any.
    public var pid: pid_t? { process.withLock { $0?.pid } }

    /// Stops samba and removes the folder.
    public func shutdown() async {
        await stop()
        folder.remove()
    }

    /// Runs samba in the foreground until port 636 answers (at most 60 s).
    func launch() async throws {
        let child = try ChildProcess.spawn(
            "samba", ["-i", "-M", "single", "--debuglevel=1", "-s", folder.file("etc/smb.conf")],
            workingDirectory: folder.path, stdoutPath: logPath, stderrPath: logPath, newProcessGroup: true
        )
        process.withLock { $0 = child }
        let address = self.address
        _ = await waitUntil(timeout: 60, interval: 0.05) {
            canConnect(host: address, port: 636) || !child.isRunning
        }
        guard canConnect(host: address, port: 636), canConnect(host: address, port: 389) else {
            await stop()
            throw SambaError("samba did not listen on \(address):636 within 60 s; log: \((TestFiles.readString(logPath) ?? "").suffix(2000))")
        }
    }
}

public struct SambaError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// The shared DC, started once.
enum SharedSambaDC {
    static let instance = Task<SambaDC, any Error> {
        let dc = try await SambaDC.start()
        SambaCleanup.register(pid: dc.pid, folder: dc.folder.path)
        return dc
    }
}

/// Loopback addresses handed out to DCs of this process: 127.0.0.2 upwards,
/// skipping any where something already listens on 389 (a DC another run left).
enum SambaAddresses {
    private static let last = Mutex(1)

    static func next() throws -> String {
        try last.withLock { last in
            while last < 250 {
                last += 1
                let address = "127.0.0.\(last)"
                if !canConnect(host: address, port: 389) && !canConnect(host: address, port: 636) { return address }
            }
            throw SambaError("no free loopback address for a Samba DC")
        }
    }
}

/// Kills the shared DC and removes the template when the process exits.
enum SambaCleanup {
    private static let state = Mutex<(pids: [pid_t], folders: [String], registered: Bool)>(([], [], false))

    static func register(pid: pid_t?, folder: String) {
        let first = state.withLock { state in
            if let pid { state.pids.append(pid) }
            state.folders.append(folder)
            defer { state.registered = true }
            return !state.registered
        }
        if first { atexit { SambaCleanup.run() } }
    }

    static func run() {
        let (pids, folders) = state.withLock { ($0.pids, $0.folders) }
        for pid in pids { Glibc.kill(-pid, SIGKILL) }
        for folder in folders where folder.hasPrefix(TemporaryDirectory.prefix) {
            if let keep = getenv("TOLLGATE_KEEP_TEST_DIRS"), String(cString: keep) == "1" { continue }
            try? FileManager.default.removeItem(atPath: folder)
        }
    }
}
