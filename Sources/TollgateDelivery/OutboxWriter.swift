import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
import TollgateConfiguration
import TollgateSpool
import TollgateMetrics
#endif

/// The `directory:` upstream: each message becomes one `.eml` file, written to a
/// temporary name, fsync'd, renamed into place, and the folder fsync'd — so a file
/// either is complete or is not there.
public struct OutboxWriter: Sendable {
    public var directory: String

    public init(directory: String) {
        self.directory = directory
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Writes `Return-Path:`/`X-Envelope-To:` lines so the envelope survives, then
    /// `header` (the trace header), then `content` from its own buffer.
    public func write(id: String, sender: String, recipients: [String], header: String = "", content: ByteBuffer) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw Failure(description: "cannot create the outbox folder \(directory) (\(ErrorText.describe(error)))")
        }
        var prefix = "Return-Path: <\(sender)>\r\n"
        for r in recipients { prefix += "X-Envelope-To: <\(r)>\r\n" }
        prefix += header
        let final = "\(directory)/\(id).eml"
        let temporary = "\(directory)/.\(id).eml.tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw Failure(description: "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        do {
            try Array(prefix.utf8).withUnsafeBytes { try Self.writeAll(fd, $0, path: temporary) }
            try content.withUnsafeReadableBytes { try Self.writeAll(fd, $0, path: temporary) }
            guard fsync(fd) == 0 else { throw Failure(description: "cannot fsync \(temporary): \(String(cString: strerror(errno)))") }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, final) == 0 else {
            unlink(temporary)
            throw Failure(description: "cannot rename into \(final): \(String(cString: strerror(errno)))")
        }
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }

    /// Writes every byte of `bytes`, retrying short writes and EINTR.
    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }
}
