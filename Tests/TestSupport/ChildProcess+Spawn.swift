#if canImport(Glibc)
import Glibc
#endif

extension ChildProcess {
    /// Starts `executable` (a path, or a name looked up with ``ExecutableLookup``)
    /// with `arguments`.
    ///
    /// - Parameters:
    ///   - environment: the complete environment of the child; `nil` inherits ours
    ///     (see ``inheritedEnvironment()`` to start from a copy of ours).
    ///   - workingDirectory: the child's current folder; `nil` keeps ours.
    ///   - stdoutPath, stderrPath: files to create or truncate for the output;
    ///     `nil` is `/dev/null`. The same path for both gives one interleaved file.
    ///   - newProcessGroup: put the child in its own process group, so that
    ///     ``signal(_:)`` reaches its children too. Off by default: a child in
    ///     its own group does not get the terminal's Ctrl-C.
    public static func spawn(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        workingDirectory: String? = nil,
        stdoutPath: String? = nil,
        stderrPath: String? = nil,
        newProcessGroup: Bool = false
    ) throws -> ChildProcess {
        let path = try ExecutableLookup.require(executable)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let output = O_WRONLY | O_CREAT | O_TRUNC
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath ?? "/dev/null", output, 0o644)
        if let stderrPath, stderrPath == stdoutPath {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, stderrPath ?? "/dev/null", output, 0o644)
        }
        if let closeFrom = GlibcSpawnExtensions.addCloseFrom {
            _ = closeFrom(&actions, 3)
        }
        if let workingDirectory {
            guard let addChdir = GlibcSpawnExtensions.addChdir else {
                throw TestSupportError(.processFailed, "posix_spawn_file_actions_addchdir_np is missing (glibc < 2.29)")
            }
            _ = addChdir(&actions, workingDirectory)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigemptyset(&allSignals)
        for sig in 1..<32 where sig != SIGKILL && sig != SIGSTOP {
            sigaddset(&allSignals, Int32(sig))
        }
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if newProcessGroup {
            flags |= POSIX_SPAWN_SETPGROUP
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let argv = CStringArray([path] + arguments)
        let envp = environment.map { CStringArray($0.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }) }
        var pid: pid_t = 0
        let result = argv.withPointers { argvPointer in
            if let envp {
                return envp.withPointers { posix_spawn(&pid, path, &actions, &attributes, argvPointer, $0) }
            }
            return posix_spawn(&pid, path, &actions, &attributes, argvPointer, environ)
        }
        guard result == 0 else {
            throw TestSupportError(.processFailed, "posix_spawn \(path): \(String(cString: strerror(result)))")
        }
        return ChildProcess(pid: pid, executable: path, arguments: arguments, hasOwnProcessGroup: newProcessGroup)
    }

    /// A copy of this process's environment, to modify and pass to ``spawn(_:_:environment:workingDirectory:stdoutPath:stderrPath:newProcessGroup:)``.
    public static func inheritedEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            entry += 1
        }
        return result
    }
}

/// A NULL-terminated array of C strings, freed on deinit.
private final class CStringArray {
    private let pointers: [UnsafeMutablePointer<CChar>?]

    init(_ strings: [String]) {
        pointers = strings.map { strdup($0) } + [nil]
    }

    deinit {
        for pointer in pointers { free(pointer) }
    }

    func withPointers<T>(_ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> T) -> T {
        pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34) and
/// `posix_spawn_file_actions_addchdir_np` (2.29), looked up at run time:
/// Swift's Glibc module does not export them.
private enum GlibcSpawnExtensions {
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    static let addCloseFrom: AddCloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: AddCloseFrom.self) }
    static let addChdir: AddChdir? = dlsym(nil, "posix_spawn_file_actions_addchdir_np")
        .map { unsafeBitCast($0, to: AddChdir.self) }
}
