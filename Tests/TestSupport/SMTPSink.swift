import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Postfix's `smtp-sink` as a separate process on 127.0.0.1, dumping every
/// mail transaction to a file in a folder (`-d <folder>/msg.`).
///
/// What `smtp-sink -d` writes (measured, Postfix 3.7.x): one file per
/// transaction, created at MAIL FROM, deleted again on RSET or if the client
/// disconnects before the final dot, and closed after the dot. The file holds
/// `X-Client-Addr`, `X-Client-Proto`, `X-Helo-Args`, `X-Mail-Args` (everything
/// after `MAIL FROM:`, parameters included), one `X-Rcpt-Args` per RCPT and a
/// three-line `Received:` header, then the content, then an extra empty line.
/// The content is **not** the exact bytes received: CRLF becomes LF, a bare LF
/// stays LF, a bare CR is deleted, and a leading "." is removed from every line
/// that begins with "." after CRLF (".x" → "x", "..x" → ".x"); after a bare LF
/// the dot is kept. Only CRLF "." CRLF ends DATA (`\n.\n`, `\n.\r\n`,
/// `\r\n.\n` do not). So smtp-sink can check envelopes and text, but not
/// CRLF discipline or exact bytes: use ``RawSMTPSink`` for that.
///
/// ``messages()`` returns only finished transactions: a dump file that
/// smtp-sink still holds open (checked in `/proc/<pid>/fd`) is skipped.
///
/// As root, smtp-sink must drop privileges (`-u`): this wrapper adds
/// `-u nobody`, hands the dump folder to `nobody` and makes the folders above
/// it searchable (`o+x`) if they are ``TemporaryDirectory`` folders.
/// Options such as `-r RCPT`, `-f .`, `-q DATA`, `-Q MAIL`, `-8`, `-p`, `-e`,
/// `-w 2` go in `extraOptions` (see `man smtp-sink`).
public final class SMTPSink: Sendable {
    /// The port smtp-sink listens on, on 127.0.0.1.
    public let port: Int
    /// The folder with the dump files (`msg.<hex>`) and `smtp-sink.log`.
    public let dumpDirectory: String
    /// The smtp-sink process.
    public let process: ChildProcess
    /// Finished dump files already parsed (smtp-sink never touches them again).
    private let parsed = Mutex<[String: (time: Int64, message: CapturedMessage)]>([:])

    /// The dump files' name prefix.
    public static let dumpPrefix = "msg."

    /// Whether `smtp-sink` is installed.
    public static var isAvailable: Bool { ExecutableLookup.find("smtp-sink") != nil }

    private init(port: Int, dumpDirectory: String, process: ChildProcess) {
        self.port = port
        self.dumpDirectory = dumpDirectory
        self.process = process
    }

    deinit { process.terminate(timeout: 2) }

    /// Starts smtp-sink on 127.0.0.1:`port` (0: a free port, retried a few
    /// times if someone takes it first) and waits until it listens.
    public static func start(
        port: Int = 0,
        dumpDirectory: String,
        extraOptions: [String] = [],
        startupTimeout: Double = 10
    ) throws -> SMTPSink {
        let executable = try ExecutableLookup.require("smtp-sink")
        try prepare(dumpDirectory: dumpDirectory)
        var options = extraOptions
        if geteuid() == 0 && !extraOptions.contains("-u") { options = ["-u", "nobody"] + options }
        let template = dumpDirectory.replacing("%", with: "%%") + "/" + dumpPrefix
        let log = dumpDirectory + "/smtp-sink.log"
        var attempt = 0
        while true {
            attempt += 1
            let chosen = port == 0 ? freePort() : port
            let child = try ChildProcess.spawn(
                executable, options + ["-d", template, "127.0.0.1:\(chosen)", "64"],
                stdoutPath: log, stderrPath: log
            )
            waitUntil(timeout: startupTimeout, interval: 0.01) { isListening(port: chosen) || !child.isRunning }
            // Someone else's socket on the port would look the same: make sure
            // smtp-sink has not died of "address in use" meanwhile.
            if isListening(port: chosen) { waitUntil(timeout: 0.05, interval: 0.01) { !child.isRunning } }
            if child.isRunning && isListening(port: chosen) {
                return SMTPSink(port: chosen, dumpDirectory: dumpDirectory, process: child)
            }
            child.terminate(timeout: 1)
            let output = TestFiles.readString(log) ?? ""
            if port == 0 && output.contains("in use") && attempt < 5 { continue }
            throw TestSupportError(.processFailed, "smtp-sink did not listen on 127.0.0.1:\(chosen) within \(startupTimeout) s: \(output.suffix(2000))")
        }
    }

    /// The finished transactions dumped so far, ordered by the dump files'
    /// modification times. Those come from the kernel's coarse clock (a few
    /// milliseconds), so transactions that finished within one tick may come
    /// in either order: match messages by envelope rather than position.
    public func messages() -> [CapturedMessage] {
        // List first, then look at the open files: a file created in between
        // is then not listed, rather than listed and taken for finished.
        let listed = TestFiles.list(dumpDirectory)
            .filter { $0.hasPrefix(Self.dumpPrefix) }
            .map { dumpDirectory + "/" + $0 }
        let open = openFiles()
        let paths = listed.filter { !open.contains($0) }
        let known = parsed.withLock { $0 }
        var found: [(time: Int64, message: CapturedMessage)] = []
        var new: [String: (time: Int64, message: CapturedMessage)] = [:]
        for path in paths {
            if let entry = known[path] {
                found.append(entry)
            } else if let time = TestFiles.modificationTime(path), let bytes = TestFiles.read(path),
                      let message = CapturedMessage.parse(bytes, path: path) {
                found.append((time, message))
                new[path] = (time, message)
            }
        }
        parsed.withLock { $0.merge(new) { old, _ in old } }
        return found
            .sorted { $0.time < $1.time || ($0.time == $1.time && $0.message.path < $1.message.path) }
            .map(\.message)
    }

    /// The values of header field `header` (default `X-Marker`) in the
    /// finished messages: tests that tag each message with a unique marker
    /// check delivery with `acknowledged.allSatisfy(sink.deliveredMarkers().contains)`.
    public func deliveredMarkers(header: String = "X-Marker") -> Set<String> {
        Set(messages().compactMap { $0.headerValue(header) })
    }

    /// Waits until at least `count` transactions are finished (or `timeout`
    /// seconds pass) and returns what there is.
    public func waitForMessages(count: Int, timeout: Double) -> [CapturedMessage] {
        var found: [CapturedMessage] = []
        waitUntil(timeout: timeout) {
            found = messages()
            return found.count >= count
        }
        return found
    }

    /// The async form of ``waitForMessages(count:timeout:)``.
    public func waitForMessages(count: Int, timeout: Double) async -> [CapturedMessage] {
        let found = Mutex<[CapturedMessage]>([])
        await waitUntil(timeout: timeout) {
            let current = messages()
            found.withLock { $0 = current }
            return current.count >= count
        }
        return found.withLock { $0 }
    }

    /// smtp-sink's own output (warnings, `-v` transcripts).
    public var log: String { TestFiles.readString(dumpDirectory + "/smtp-sink.log") ?? "" }

    /// Stops smtp-sink (SIGTERM, SIGKILL after 2 s). Idempotent.
    public func stop() {
        process.terminate(timeout: 2)
    }

    /// The dump files smtp-sink holds open: transactions still in progress.
    private func openFiles() -> Set<String> {
        let folder = "/proc/\(process.pid)/fd"
        var paths = Set<String>()
        for entry in TestFiles.list(folder) {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let length = readlink(folder + "/" + entry, &buffer, buffer.count - 1)
            if length > 0 {
                paths.insert(String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
        }
        return paths
    }

    /// Creates the dump folder; as root, gives it to `nobody` and makes our
    /// own temporary folders above it searchable.
    private static func prepare(dumpDirectory: String) throws {
        if mkdir(dumpDirectory, 0o755) != 0 && errno != EEXIST {
            throw TestSupportError.system("mkdir \(dumpDirectory)")
        }
        guard geteuid() == 0 else { return }
        guard let nobody = getpwnam("nobody") else { throw TestSupportError(.notFound, "no user nobody") }
        guard chown(dumpDirectory, nobody.pointee.pw_uid, nobody.pointee.pw_gid) == 0 else {
            throw TestSupportError.system("chown \(dumpDirectory)")
        }
        var folder = dumpDirectory
        while let slash = folder.lastIndex(of: "/"), slash != folder.startIndex {
            folder = String(folder[..<slash])
            var info = stat()
            guard stat(folder, &info) == 0 else { throw TestSupportError.system("stat \(folder)") }
            if info.st_mode & S_IXOTH != 0 { continue }
            guard folder.hasPrefix(TemporaryDirectory.prefix) else {
                throw TestSupportError(.system, "smtp-sink runs as nobody and cannot reach \(dumpDirectory): \(folder) is not searchable by others")
            }
            chmod(folder, (info.st_mode & 0o7777) | S_IXOTH)
        }
    }
}
