import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A capturing SMTP server that keeps the exact bytes: `Resources/raw_smtp_sink.py`
/// (Python 3, standard library only) run as a separate process on 127.0.0.1.
///
/// Unlike ``SMTPSink`` it speaks STARTTLS, implicit TLS, AUTH PLAIN/LOGIN,
/// SMTPUTF8, 8BITMIME, SIZE, DSN and CHUNKING (BDAT) as configured in
/// ``Options``, and stores per transaction the bytes between 354 and the final
/// `.\r\n` as received (``RawSMTPTransaction/raw``) and after unstuffing only
/// (``RawSMTPTransaction/content``): no line-ending normalisation, so tests can
/// assert that the relay sends canonical CRLF. Only `\r\n.\r\n` ends DATA.
/// Unstuffing follows RFC 5321 §4.5.2: the first character of any line
/// (after CRLF) that begins with "." is removed — as Postfix does — so a relay
/// that forgets to stuff ".x" loses the dot here as it would in real life.
///
/// The script prints `READY <port>` once it listens; ``start(port:directory:options:startupTimeout:)``
/// waits for that line. The process exits on its own when its parent dies or
/// after ``Options/lifetime``; ``stop()`` and `deinit` kill it by PID.
public final class RawSMTPSink: Sendable {
    /// The port the sink listens on, on 127.0.0.1.
    public let port: Int
    /// The folder with `NNNNNN.json/.eml/.raw`, `conn-NNNNNN.log` and the script's output.
    public let directory: String
    /// The Python process.
    public let process: ChildProcess

    private init(port: Int, directory: String, process: ChildProcess) {
        self.port = port
        self.directory = directory
        self.process = process
    }

    deinit { process.terminate(timeout: 2) }

    /// `Resources/raw_smtp_sink.py` next to this source file, or
    /// `$TOLLGATE_RAW_SMTP_SINK` if set.
    public static var scriptPath: String {
        if let override = getenv("TOLLGATE_RAW_SMTP_SINK") { return String(cString: override) }
        let source = #filePath
        let folder = source[..<(source.lastIndex(of: "/") ?? source.startIndex)]
        return folder + "/Resources/raw_smtp_sink.py"
    }

    /// The Python interpreter: `/usr/bin/python3` if present, else `python3` from `PATH`.
    public static var python: String? {
        ExecutableLookup.isExecutableFile("/usr/bin/python3") ? "/usr/bin/python3" : ExecutableLookup.find("python3")
    }

    /// Starts the sink (port 0: the script binds a free port itself) and waits
    /// for its `READY` line. `directory` is created if needed.
    public static func start(
        port: Int = 0,
        directory: String,
        options: Options = Options(),
        startupTimeout: Double = 10
    ) throws -> RawSMTPSink {
        guard let python else { throw TestSupportError(.notFound, "python3 not found") }
        let script = scriptPath
        guard TestFiles.exists(script) else { throw TestSupportError(.notFound, "raw SMTP sink script \(script)") }
        if mkdir(directory, 0o755) != 0 && errno != EEXIST { throw TestSupportError.system("mkdir \(directory)") }
        let stdout = directory + "/raw_smtp_sink.out"
        let stderr = directory + "/raw_smtp_sink.err"
        let child = try ChildProcess.spawn(
            python, ["-I", script, "--host", "127.0.0.1", "--port", String(port), "--dir", directory] + options.arguments,
            stdoutPath: stdout, stderrPath: stderr
        )
        var listening: Int?
        waitUntil(timeout: startupTimeout, interval: 0.01) {
            listening = readyPort(stdout)
            return listening != nil || !child.isRunning
        }
        guard let listening, child.isRunning else {
            child.terminate(timeout: 1)
            let errors = TestFiles.readString(stderr) ?? ""
            throw TestSupportError(.processFailed, "raw_smtp_sink.py did not become ready within \(startupTimeout) s: \(errors.suffix(2000))")
        }
        return RawSMTPSink(port: listening, directory: directory, process: child)
    }

    /// The finished transactions so far (those whose `.json` exists), in order.
    /// The files are written atomically; one that cannot be read is skipped.
    public func messages() -> [RawSMTPTransaction] {
        TestFiles.list(directory)
            .filter { $0.hasSuffix(".json") }
            .compactMap { try? RawSMTPTransaction(directory: directory, id: String($0.dropLast(5))) }
    }

    /// The values of header field `header` in the finished messages (see ``SMTPSink/deliveredMarkers(header:)``).
    public func deliveredMarkers(header: String = "X-Marker") -> Set<String> {
        Set(messages().compactMap { $0.headerValue(header) })
    }

    /// Waits until at least `count` transactions are stored (or `timeout`
    /// seconds pass) and returns what there is.
    public func waitForMessages(count: Int, timeout: Double) -> [RawSMTPTransaction] {
        var found: [RawSMTPTransaction] = []
        waitUntil(timeout: timeout) {
            found = messages()
            return found.count >= count
        }
        return found
    }

    /// The async form of ``waitForMessages(count:timeout:)``.
    public func waitForMessages(count: Int, timeout: Double) async -> [RawSMTPTransaction] {
        let found = Mutex<[RawSMTPTransaction]>([])
        await waitUntil(timeout: timeout) {
            let current = messages()
            found.withLock { $0 = current }
            return current.count >= count
        }
        return found.withLock { $0 }
    }

    /// The transcripts of all connections so far, in order: lines "C: …"
    /// (commands; AUTH secrets masked), "S: …" (replies) and "*: …" (events:
    /// TLS, pipelining violations, STARTTLS injection, DATA sizes, closing).
    public func transcripts() -> [String] {
        TestFiles.list(directory)
            .filter { $0.hasPrefix("conn-") && $0.hasSuffix(".log") }
            .compactMap { TestFiles.readString(directory + "/" + $0) }
    }

    /// The script's standard error (Python tracebacks end up here).
    public var errorOutput: String { TestFiles.readString(directory + "/raw_smtp_sink.err") ?? "" }

    /// Stops the sink (SIGTERM, SIGKILL after 2 s). Idempotent.
    public func stop() {
        process.terminate(timeout: 2)
    }

    private static func readyPort(_ path: String) -> Int? {
        guard let text = TestFiles.readString(path), let line = text.split(separator: "\n").first(where: { $0.hasPrefix("READY ") }) else {
            return nil
        }
        return Int(String(line.dropFirst(6).filter { $0.isASCII && $0.isNumber }))
    }
}
