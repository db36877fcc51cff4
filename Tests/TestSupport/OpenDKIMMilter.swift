import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real OpenDKIM (Debian's `opendkim`) run as a milter for a test: `opendkim -f -x CONF`
/// on a free loopback port, its key (made with `opendkim-genkey`), configuration and
/// pid file in a temporary folder; stopped by PID.
public final class OpenDKIMMilter: @unchecked Sendable {
    public let port: Int
    public let folder: TemporaryDirectory
    public let process: ChildProcess
    /// `milt._domainkey.example.com` → the TXT record text (for verifiers, not DNS).
    public let records: [String: String]
    public let domain: String
    public let selector: String

    public static var isAvailable: Bool {
        ExecutableLookup.find("opendkim") != nil && ExecutableLookup.find("opendkim-genkey") != nil
    }

    /// `mode`: `sv` (sign mail from 127.0.0.1, verify the rest) or `v`; `keys` (verify
    /// mode): records OpenDKIM is given instead of DNS (`TestPublicKeys`).
    public init(mode: String = "sv", domain: String = "example.com", selector: String = "milt", keys: [String: String] = [:]) throws {
        self.domain = domain
        self.selector = selector
        folder = try TemporaryDirectory(label: "opendkim-milter")
        chmod(folder.path, 0o755)
        let gen = try ChildProcess.run("opendkim-genkey", ["--bits=2048", "--domain=\(domain)", "--selector=\(selector)", "--directory=\(folder.path)"], timeout: 60)
        guard gen.status == 0 else { throw TestSupportError(.processFailed, "opendkim-genkey: \(gen.stderr)") }
        let zone = try String(contentsOfFile: folder.file("\(selector).txt"), encoding: .utf8)
        // the quoted strings of the zone stub, joined
        var text = ""
        var inQuote = false
        for ch in zone {
            if ch == "\"" { inQuote.toggle(); continue }
            if inQuote { text.append(ch) }
        }
        records = ["\(selector)._domainkey.\(domain)": text]
        let keyPath = folder.file("\(selector).private")
        _ = try? ChildProcess.run("chown", ["opendkim", keyPath], timeout: 10)
        let testKeys = (keys.isEmpty ? records : keys).map { "\($0.key) \($0.value)\n" }.joined()
        try testKeys.write(toFile: folder.file("keys"), atomically: true, encoding: .utf8)
        chmod(folder.file("keys"), 0o644)
        port = freePort()
        let conf = """
            Syslog no
            Mode \(mode)
            Socket inet:\(port)@127.0.0.1
            Domain \(domain)
            Selector \(selector)
            KeyFile \(keyPath)
            RequireSafeKeys false
            Canonicalization relaxed/relaxed
            InternalHosts \(mode.contains("s") ? "127.0.0.1" : "192.0.2.1")
            AuthservID test.example
            TestPublicKeys \(folder.file("keys"))
            PidFile \(folder.file("opendkim.pid"))
            UserID opendkim

            """
        try conf.write(toFile: folder.file("opendkim.conf"), atomically: true, encoding: .utf8)
        process = try ChildProcess.spawn("opendkim", ["-f", "-x", folder.file("opendkim.conf")], stdoutPath: folder.file("opendkim.log"), stderrPath: folder.file("opendkim.log"))
        guard waitForPort(port, timeout: 10) else {
            _ = process.kill()
            let log = (try? String(contentsOfFile: folder.file("opendkim.log"), encoding: .utf8)) ?? ""
            throw TestSupportError(.timedOut, "opendkim did not listen on \(port): \(log)")
        }
    }

    public var log: String { (try? String(contentsOfFile: folder.file("opendkim.log"), encoding: .utf8)) ?? "" }

    public func stop() {
        _ = process.terminate(timeout: 5)
        folder.remove()
    }
}
