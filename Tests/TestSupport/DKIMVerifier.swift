import Foundation

/// Verifies DKIM signatures with dkimpy (`python3-dkim`, `Resources/dkim_verify.py`):
/// the key records come from the test, not from DNS.
public enum DKIMVerifier {
    public static var scriptPath: String {
        let source = #filePath
        let folder = source[..<(source.lastIndex(of: "/") ?? source.startIndex)]
        return folder + "/Resources/dkim_verify.py"
    }

    /// Whether dkimpy is installed (`scripts/install-deps.sh` installs it).
    public static var isAvailable: Bool {
        guard let python = RawSMTPSink.python,
              let check = try? ChildProcess.run(python, ["-c", "import dkim, nacl"], timeout: 30)
        else { return false }
        return check.status == 0
    }

    /// Verifies each message (exact bytes); `records` maps `selector._domainkey.domain`
    /// to the TXT text. One output line per signature, `PASS …` or `FAIL …`.
    public static func verify(_ messages: [[UInt8]], records: [String: String]) throws -> (passed: Bool, output: String) {
        guard let python = RawSMTPSink.python else { throw TestSupportError(.notFound, "python3 not found") }
        let dir = try TemporaryDirectory(label: "dkimverify")
        defer { dir.remove() }
        let recordsPath = dir.path + "/records.json"
        try JSONSerialization.data(withJSONObject: records).write(to: URL(fileURLWithPath: recordsPath))
        var paths: [String] = []
        for (i, message) in messages.enumerated() {
            let path = dir.path + "/m\(i).eml"
            try Data(message).write(to: URL(fileURLWithPath: path))
            paths.append(path)
        }
        let run = try ChildProcess.run(python, ["-I", scriptPath, recordsPath] + paths, timeout: 60)
        return (run.status == 0, run.stdout + run.stderr)
    }
}

/// Verifies DKIM signatures with OpenDKIM (Debian's `opendkim`) in its test mode
/// (`opendkim -t FILE`), the keys read from a `TestPublicKeys` file, not DNS.
public enum OpenDKIMVerifier {
    public static var binary: String? { ExecutableLookup.isExecutableFile("/usr/sbin/opendkim") ? "/usr/sbin/opendkim" : ExecutableLookup.find("opendkim") }

    /// For each message, OpenDKIM's verdict line (`… verification (s=…, d=…) succeeded`);
    /// `passed` only if every message's signature verified.
    public static func verify(_ messages: [[UInt8]], records: [String: String]) throws -> (passed: Bool, output: String) {
        guard let binary else { throw TestSupportError(.notFound, "opendkim not found") }
        let dir = try TemporaryDirectory(label: "opendkim")
        defer { dir.remove() }
        try records.map { "\($0.key) \($0.value)\n" }.joined().write(toFile: dir.path + "/keys", atomically: true, encoding: .utf8)
        try "Mode v\nSyslog no\nTestPublicKeys \(dir.path)/keys\n".write(toFile: dir.path + "/opendkim.conf", atomically: true, encoding: .utf8)
        var passed = true
        var output = ""
        for (i, message) in messages.enumerated() {
            let path = dir.path + "/m\(i).eml"
            try Data(message).write(to: URL(fileURLWithPath: path))
            let run = try ChildProcess.run(binary, ["-x", dir.path + "/opendkim.conf", "-t", path, "-vv"], timeout: 60)
            let verdict = (run.stdout + run.stderr).split(separator: "\n").first { $0.contains("verification") } ?? "no verdict (status \(run.status)): \(run.stderr)"
            if run.status != 0 || !verdict.contains("succeeded") { passed = false }
            output += verdict + "\n"
        }
        return (passed, output)
    }
}
