#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging

/// The spool holds every queued message: only the relay's user may read it. The
/// folder is `0700` and the database with its WAL and shared-memory files `0600`;
/// at every open these are checked, anything wider is narrowed, and a warning
/// names the file and both modes.
enum SpoolPermissions {
    static let folderMode: mode_t = 0o700
    static let fileMode: mode_t = 0o600

    /// Creates `path` (`0700`) and any missing parent folders.
    static func makeFolder(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: Int(folderMode)])
    }

    /// Creates the database file `0600` before SQLite does (it would use `0644`).
    static func makeDatabaseFile(_ path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, fileMode)
        if fd >= 0 { close(fd) }
    }

    /// Narrows the folder to `0700` and each existing file to `0600`; returns what was changed.
    @discardableResult
    static func enforce(folder: String, files: [String], logger: Logger) -> [String] {
        var changed: [String] = []
        func narrow(_ path: String, to wanted: mode_t) {
            var info = stat()
            guard stat(path, &info) == 0 else { return }
            let mode = info.st_mode & 0o7777
            guard mode & ~wanted != 0 else { return }
            if chmod(path, wanted) == 0 {
                logger.warning(
                    "spool permissions were too wide; narrowed",
                    metadata: ["spool.file": "\(path)", "spool.file.mode.was": "\(octal(mode))", "spool.file.mode": "\(octal(wanted))"]
                )
                changed.append(path)
            } else {
                logger.error(
                    "spool permissions are too wide and cannot be narrowed",
                    metadata: ["spool.file": "\(path)", "spool.file.mode": "\(octal(mode))", "error.message": "\(String(cString: strerror(errno)))"]
                )
            }
        }
        narrow(folder, to: folderMode)
        for file in files { narrow(file, to: fileMode) }
        return changed
    }

    static func octal(_ mode: mode_t) -> String {
        "0" + String(mode, radix: 8)
    }
}
