import Foundation
import NIOCore
import NIOPosix

/// Errors of the test helpers.
struct HelperError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A scratch folder removed on `deinit`.
final class ScratchFolder: Sendable {
    let path: String

    init() throws {
        let path = NSTemporaryDirectory() + "smtpclient-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        self.path = path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }

    func read(_ name: String) -> [UInt8]? {
        FileManager.default.contents(atPath: file(name)).map { Array($0) }
    }
}

/// Runs a program to completion; throws on a non-zero exit.
func runTool(_ executable: String, _ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw HelperError("\(executable) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
    }
}

/// A background server process, killed on ``stop()`` or `deinit`.
final class ServerProcess: @unchecked Sendable {
    private let process: Process
    private let stdin = Pipe()

    init(_ executable: String, _ arguments: [String]) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = stdin
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    /// SIGKILL: children inherit the test process's blocked signal mask, so smtp-sink
    /// never sees a SIGTERM.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? stdin.fileHandleForWriting.close()
    }

    deinit { stop() }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
func waitForListener(port: Int, timeout: Duration = .seconds(10)) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        close(fd)
        if result == 0 { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw HelperError("nothing listening on port \(port)")
}

/// A port that was free a moment ago.
func unusedPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw HelperError("cannot bind a port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A test CA, a server certificate it signed for `localhost` and 127.0.0.1, and a
/// self-signed certificate for the same names. EC keys keep generation fast.
struct TestPKI: Sendable {
    let caCertificate: String
    let serverCertificate: String
    let serverKey: String
    let selfSignedCertificate: String
    let selfSignedKey: String

    /// Made once per test run.
    static let shared: Result<TestPKI, HelperError> = {
        do {
            return .success(try TestPKI(folder: NSTemporaryDirectory() + "smtpclient-pki-" + UUID().uuidString))
        } catch {
            return .failure(HelperError("cannot make certificates: \(error)"))
        }
    }()

    init(folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let openssl = "/usr/bin/openssl"
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        caCertificate = folder + "/ca.pem"
        serverCertificate = folder + "/server.pem"
        serverKey = folder + "/server.key"
        selfSignedCertificate = folder + "/self.pem"
        selfSignedKey = folder + "/self.key"
        try runTool(openssl, ["req", "-x509"] + ec + [
            "-keyout", folder + "/ca.key", "-out", caCertificate, "-days", "2", "-subj", "/CN=Tollgate Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
        try runTool(openssl, ["req"] + ec + ["-keyout", serverKey, "-out", folder + "/server.csr", "-subj", "/CN=localhost"])
        let extensions = folder + "/server.ext"
        try "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
            .write(toFile: extensions, atomically: true, encoding: .utf8)
        try runTool(openssl, [
            "x509", "-req", "-in", folder + "/server.csr", "-CA", caCertificate, "-CAkey", folder + "/ca.key",
            "-CAcreateserial", "-out", serverCertificate, "-days", "2", "-extfile", extensions,
        ])
        try runTool(openssl, ["req", "-x509"] + ec + [
            "-keyout", selfSignedKey, "-out", selfSignedCertificate, "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
    }
}

/// The scripted Python upstream (``fakeUpstreamScript``), one process per test.
final class FakeUpstream: Sendable {
    let port: Int
    let folder: ScratchFolder
    private let process: ServerProcess

    /// `settings` are the script's switches; `dir` (and `cert`/`key` when TLS is on) are added.
    static func start(_ settings: [String: any Sendable], tls: Bool = false, selfSigned: Bool = false) async throws -> FakeUpstream {
        let folder = try ScratchFolder()
        var settings = settings
        settings["dir"] = folder.path
        if tls {
            let pki = try TestPKI.shared.get()
            settings["cert"] = selfSigned ? pki.selfSignedCertificate : pki.serverCertificate
            settings["key"] = selfSigned ? pki.selfSignedKey : pki.serverKey
        }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: settings), as: UTF8.self)
        let script = folder.file("fake_upstream.py")
        try fakeUpstreamScript.write(toFile: script, atomically: true, encoding: .utf8)
        let python = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "/usr/local/bin/python3"
        let process = try ServerProcess(python, [script, json])
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while clock.now < deadline {
            if let bytes = folder.read("port"), let port = Int(String(decoding: bytes, as: UTF8.self)) {
                return FakeUpstream(port: port, folder: folder, process: process)
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        process.stop()
        throw HelperError("fake upstream did not start")
    }

    private init(port: Int, folder: ScratchFolder, process: ServerProcess) {
        self.port = port
        self.folder = folder
        self.process = process
    }

    /// The DATA bytes of message `n` (1-based) exactly as received; waits briefly for the file.
    func message(_ n: Int) async -> [UInt8]? {
        for _ in 0..<100 {
            if let bytes = folder.read("message-\(n).raw") { return bytes }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Every byte session `n` (1-based) received so far (TLS decrypted).
    func session(_ n: Int) -> String {
        String(decoding: folder.read("session-\(n).raw") ?? [], as: UTF8.self)
    }

    var authLog: String { String(decoding: folder.read("auth.log") ?? [], as: UTF8.self) }

    func stop() { process.stop() }
}

/// Postfix's `smtp-sink`, listening on a free port; dumps each message into `folder`.
final class PostfixSink: Sendable {
    let port: Int
    let folder: ScratchFolder
    private let process: ServerProcess

    static let executable = "/usr/sbin/smtp-sink"

    static func start(_ options: [String] = []) async throws -> PostfixSink {
        var lastError: any Error = HelperError("smtp-sink did not start")
        for _ in 0..<5 {
            let folder = try ScratchFolder()
            try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: folder.path)
            let port = try unusedPort()
            let user = getuid() == 0 ? ["-u", "nobody"] : []
            let process = try ServerProcess(executable, user + options + ["-d", folder.path + "/%M.", "127.0.0.1:\(port)", "16"])
            do {
                try await waitForListener(port: port, timeout: .seconds(5))
                guard process.isRunning else { throw HelperError("smtp-sink exited") }
                return PostfixSink(port: port, folder: folder, process: process)
            } catch {
                process.stop()
                lastError = error
            }
        }
        throw lastError
    }

    private init(port: Int, folder: ScratchFolder, process: ServerProcess) {
        self.port = port
        self.folder = folder
        self.process = process
    }

    /// The dump files written so far (smtp-sink's headers, then the un-stuffed message).
    func dumps() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.sorted().compactMap { folder.read($0) }.map { String(decoding: $0, as: UTF8.self) }
    }

    func stop() { process.stop() }
}
