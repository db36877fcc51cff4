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
