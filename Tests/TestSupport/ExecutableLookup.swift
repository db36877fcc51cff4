#if canImport(Glibc)
import Glibc
#endif

/// Finds executables the way a shell would, plus the `sbin` folders, which are
/// often missing from `PATH` for unprivileged users although Postfix's tools
/// (`smtp-sink`, `smtp-source`) live there.
public enum ExecutableLookup {
    /// Folders searched after those in `PATH`.
    public static let fallbackFolders = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]

    /// The path of `name`: itself if it contains a `/`, otherwise the first
    /// executable regular file called `name` in `PATH` or ``fallbackFolders``.
    public static func find(_ name: String) -> String? {
        if name.contains("/") { return isExecutableFile(name) ? name : nil }
        let path = getenv("PATH").map { String(cString: $0) } ?? ""
        let folders = path.split(separator: ":").map(String.init) + fallbackFolders
        for folder in folders where !folder.isEmpty {
            let candidate = folder + "/" + name
            if isExecutableFile(candidate) { return candidate }
        }
        return nil
    }

    /// Like ``find(_:)``, but throws a ``TestSupportError/Kind/notFound`` error.
    public static func require(_ name: String) throws -> String {
        guard let path = find(name) else {
            throw TestSupportError(.notFound, "executable \(name) not found in PATH or \(fallbackFolders)")
        }
        return path
    }

    static func isExecutableFile(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }
}
