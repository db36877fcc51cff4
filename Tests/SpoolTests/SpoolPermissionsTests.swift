import Foundation
import SpoolTestSupport
import TestSupport
import Testing
@testable import TollgateSpool

/// The spool holds mail: `0700` for its folder and `0600` for the database, its WAL
/// and shared-memory files, whatever the umask; wider modes are narrowed at open.
@Suite struct SpoolPermissionsTests {
    static func mode(_ path: String) -> mode_t? {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o7777 : nil
    }

    @Test func aNewSpoolIsPrivateWhateverTheUmask() async throws {
        let dir = try TemporaryDirectory(label: "perm")
        defer { dir.remove() }
        let folder = dir.path + "/var/spool"
        let old = umask(0o022)
        defer { umask(old) }
        let recording = LogRecording()
        let spool = try SQLiteSpool(directory: folder, node: "n", logger: recording.logger)
        try await spool.insert(SpoolFixtures.message(id: spool.makeQueueID(), now: 1_700_000_000))
        #expect(Self.mode(folder) == 0o700)
        for suffix in ["", "-wal", "-shm"] {
            let file = folder + "/queue.sqlite" + suffix
            #expect(Self.mode(file) == 0o600, "\(file): \(Self.mode(file).map { String($0, radix: 8) } ?? "missing")")
        }
        // Nothing was too wide, so nothing is said.
        #expect(recording.warnings.isEmpty, "\(recording.warnings)")
    }

    @Test func wideModesAreNarrowedAtOpenWithAWarning() async throws {
        let dir = try TemporaryDirectory(label: "perm")
        defer { dir.remove() }
        let folder = dir.path + "/spool"
        do {
            let spool = try SQLiteSpool(directory: folder, node: "n", logger: SpoolFixtures.quietLogger)
            try await spool.insert(SpoolFixtures.message(id: spool.makeQueueID(), now: 1_700_000_000))
        }
        // As an older Tollgate (or a copy with cp) left them: readable by every local user.
        chmod(folder, 0o755)
        chmod(folder + "/queue.sqlite", 0o644)
        let recording = LogRecording()
        let spool = try SQLiteSpool(directory: folder, node: "n", logger: recording.logger)
        #expect(try await spool.count() == 1)
        #expect(Self.mode(folder) == 0o700)
        #expect(Self.mode(folder + "/queue.sqlite") == 0o600)
        #expect(recording.warnings.count(where: { $0 == "spool permissions were too wide; narrowed" }) >= 2, "\(recording.warnings)")
    }
}
