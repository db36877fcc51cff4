extension ChildProcess {
    /// Runs a short command to completion, capturing its output through
    /// temporary files. Throws a ``TestSupportError/Kind/timedOut`` error (with
    /// the output so far) if it takes longer than `timeout` seconds; the
    /// command is then terminated. A non-zero exit is not an error: check `status`.
    ///
    /// Blocks the calling thread; for long commands in async code use ``Blocking/run(_:)``.
    public static func run(
        _ executable: String,
        _ arguments: [String],
        timeout: Double,
        environment: [String: String]? = nil,
        workingDirectory: String? = nil
    ) throws -> (status: Int32, stdout: String, stderr: String) {
        let folder = try TemporaryDirectory(label: "run")
        defer { folder.remove() }
        let child = try spawn(
            executable, arguments, environment: environment, workingDirectory: workingDirectory,
            stdoutPath: folder.file("stdout"), stderrPath: folder.file("stderr")
        )
        let status = child.waitForExit(timeout: timeout)
        return try outcome(child, status: status, folder: folder, timeout: timeout)
    }

    /// The async form of ``run(_:_:timeout:environment:workingDirectory:)``:
    /// polls with `Task.sleep` instead of blocking a thread. (A distinct name,
    /// not an overload: an `async` overload would be chosen in every async
    /// context and make `try ChildProcess.run(…)` without `await` an error.)
    public static func runAsync(
        _ executable: String,
        _ arguments: [String],
        timeout: Double,
        environment: [String: String]? = nil,
        workingDirectory: String? = nil
    ) async throws -> (status: Int32, stdout: String, stderr: String) {
        let folder = try TemporaryDirectory(label: "run")
        defer { folder.remove() }
        let child = try spawn(
            executable, arguments, environment: environment, workingDirectory: workingDirectory,
            stdoutPath: folder.file("stdout"), stderrPath: folder.file("stderr")
        )
        let status = await child.waitForExit(timeout: timeout)
        return try outcome(child, status: status, folder: folder, timeout: timeout)
    }

    private static func outcome(
        _ child: ChildProcess, status: Int32?, folder: TemporaryDirectory, timeout: Double
    ) throws -> (status: Int32, stdout: String, stderr: String) {
        if status == nil { child.terminate(timeout: 1) }
        let stdout = TestFiles.readString(folder.file("stdout")) ?? ""
        let stderr = TestFiles.readString(folder.file("stderr")) ?? ""
        guard let status else {
            let command = ([child.executable] + child.arguments).joined(separator: " ")
            throw TestSupportError(.timedOut, "\(command) ran longer than \(timeout) s; stdout: \(stdout.suffix(2000)); stderr: \(stderr.suffix(2000))")
        }
        return (status, stdout, stderr)
    }
}
