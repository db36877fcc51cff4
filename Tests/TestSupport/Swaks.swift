/// Runs `swaks` against a loopback port, for TLS and AUTH tests the plain
/// ``SMTPTestClient`` cannot do (`--tls`, `--tls-on-connect`, `--auth`, …).
///
/// With `--no-data-fixup --data <file>` swaks sends the file verbatim and then
/// a CRLF of its own (measured): end the file with "\r\n." — not ".\r\n" —
/// or the extra CRLF arrives as an empty command and the replies to everything
/// after it (QUIT) are shifted. ``rawDataArguments(_:in:)`` does this.
public enum Swaks {
    /// Whether `swaks` is installed.
    public static var isAvailable: Bool { ExecutableLookup.find("swaks") != nil }

    /// Sends one message with swaks and returns its exit status and
    /// transcript (stdout and stderr interleaved). `options` come last, so they
    /// can override the defaults (`--timeout 10`). Exit status 0 means the
    /// message was accepted; swaks uses other codes for each failed step.
    /// Blocks the calling thread (see ``Blocking/run(_:)`` for async code).
    public static func send(
        host: String = "127.0.0.1",
        port: Int,
        from: String = "sender@tollgate.test",
        to recipients: [String],
        options: [String] = [],
        timeout: Double = 30
    ) throws -> (status: Int32, transcript: String) {
        let folder = try TemporaryDirectory(label: "swaks")
        defer { folder.remove() }
        let output = folder.file("transcript")
        let child = try ChildProcess.spawn(
            "swaks", arguments(host: host, port: port, from: from, to: recipients, options: options),
            stdoutPath: output, stderrPath: output
        )
        let status = child.waitForExit(timeout: timeout)
        return try outcome(child, status: status, output: output, timeout: timeout)
    }

    /// Writes `data` + "." to `<directory>/swaks-data-<random>` and returns
    /// `["--no-data-fixup", "--data", path]`: swaks then sends `data` exactly,
    /// then ".\r\n". `data` must already be dot-stuffed and should end with
    /// CRLF (otherwise the dot does not end DATA, which may be the point).
    public static func rawDataArguments(_ data: [UInt8], in directory: String) throws -> [String] {
        let path = directory + "/swaks-data-\(UInt32.random(in: 0...UInt32.max))"
        try TestFiles.write(data + [UInt8(ascii: ".")], to: path)
        return ["--no-data-fixup", "--data", path]
    }

    private static func arguments(host: String, port: Int, from: String, to recipients: [String], options: [String]) -> [String] {
        ["--server", "\(host):\(port)", "--from", from, "--to", recipients.joined(separator: ","), "--timeout", "10"] + options
    }

    private static func outcome(_ child: ChildProcess, status: Int32?, output: String, timeout: Double) throws -> (status: Int32, transcript: String) {
        if status == nil { child.terminate(timeout: 1) }
        let transcript = TestFiles.readString(output) ?? ""
        guard let status else {
            throw TestSupportError(.timedOut, "swaks ran longer than \(timeout) s: \(transcript.suffix(2000))")
        }
        return (status, transcript)
    }
}
