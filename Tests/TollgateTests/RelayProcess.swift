import Foundation
import TestSupport

/// A real `tollgate serve` process with its own folder, configuration and port.
final class RelayProcess: @unchecked Sendable {
    let directory: TemporaryDirectory
    let port: Int
    let configPath: String
    private(set) var process: ChildProcess?
    /// A command the server runs under, e.g. `["prlimit", "--nofile=128:128"]`.
    var launcher: [String] = []

    /// The `tollgate` binary built next to the test bundle.
    static var binary: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = (exe as NSString).deletingLastPathComponent
        // The test bundle may sit in a *.xctest folder.
        while !dir.isEmpty, dir != "/" {
            let candidate = dir + "/tollgate"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = (dir as NSString).deletingLastPathComponent
        }
        return "tollgate"
    }

    /// `body` is the configuration after `hostname:` and the listener; use `PORT` nowhere:
    /// the listener is added here on a free port.
    /// `spool` is the body of the `spool:` section (the embedded store by default).
    init(listener: String = "tls: none\n    auth: none", spool: String = "path: spool", log: String = "{ level: debug }", rest: String, directory: TemporaryDirectory? = nil) throws {
        self.directory = try directory ?? TemporaryDirectory()
        self.port = freePort()
        self.configPath = self.directory.path + "/tollgate.yaml"
        let config = """
            hostname: relay.test
            listeners:
              - name: relay
                address: 127.0.0.1:\(port)
                \(listener)
            spool:
              \(spool)
            log: \(log)
            \(rest)
            """
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Starts `tollgate serve` (under ``launcher`` if set); `environment` replaces
    /// ours for the child (`nil` inherits it).
    func start(environment: [String: String]? = nil) throws {
        let command = launcher + [Self.binary, "serve", "-c", configPath]
        process = try ChildProcess.spawn(
            launcher.isEmpty ? Self.binary : try ExecutableLookup.require(launcher[0]), Array(command.dropFirst()),
            environment: environment,
            stdoutPath: directory.path + "/stdout.log",
            stderrPath: directory.path + "/serve.log"
        )
        // Watch the socket table rather than connect, so no test sees a stray session.
        guard waitUntil(timeout: 30, { isListening(port: port) }) else {
            throw TestFailure("tollgate did not start listening: \(log)")
        }
    }

    var log: String { (try? String(contentsOfFile: directory.path + "/serve.log", encoding: .utf8)) ?? "" }

    func stop() {
        _ = process?.terminate(timeout: 10)
        process = nil
    }

    func kill9() {
        process?.kill()
        _ = process?.waitForExit(timeout: 5)
        process = nil
    }

    /// Runs `tollgate ARGS -c CONFIG`.
    func cli(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        var full = args
        if let i = full.firstIndex(of: "--") { full.remove(at: i) }
        return try ChildProcess.run(Self.binary, full + ["-c", configPath], timeout: 30)
    }

    deinit {
        process?.kill()
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A unique message with a marker header, canonical CRLF.
func testMessage(marker: String, body: String = "Hello.\r\n", size: Int = 0) -> [UInt8] {
    var text = "From: a@example.com\r\nTo: b@example.net\r\nSubject: test \(marker)\r\nX-Marker: \(marker)\r\n\r\n\(body)"
    if size > text.utf8.count {
        let line = String(repeating: "x", count: 76) + "\r\n"
        while text.utf8.count < size { text += line }
    }
    return Array(text.utf8)
}
