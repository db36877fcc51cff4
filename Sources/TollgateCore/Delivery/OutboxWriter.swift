import Foundation

#if canImport(Glibc)
import Glibc
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

    /// Writes `content` with `Return-Path:`/`X-Envelope-To:` lines so the envelope survives.
    public func write(id: String, sender: String, recipients: [String], content: [UInt8]) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var data = Array("Return-Path: <\(sender)>\r\n".utf8)
        for r in recipients { data += Array("X-Envelope-To: <\(r)>\r\n".utf8) }
        data += content
        let final = "\(directory)/\(id).eml"
        let temporary = "\(directory)/.\(id).eml.tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw Failure(description: "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var offset = 0
        while offset < data.count {
            let n = data[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                let message = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                throw Failure(description: "cannot write \(temporary): \(message)")
            }
            offset += n
        }
        guard fsync(fd) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            unlink(temporary)
            throw Failure(description: "cannot fsync \(temporary): \(message)")
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
}
