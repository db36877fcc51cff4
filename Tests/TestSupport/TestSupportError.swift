#if canImport(Glibc)
import Glibc
#endif

/// An error of the test harness: what failed, and what kind of failure it was.
///
/// `kind` lets a test tell a timeout (expected, say, when DATA must not end)
/// from a closed connection or an unexpected SMTP reply.
public struct TestSupportError: Error, CustomStringConvertible, Sendable {
    /// The category of a ``TestSupportError``.
    public enum Kind: Sendable, Equatable {
        /// A wait, a read or a child process ran out of time.
        case timedOut
        /// The peer closed the connection.
        case connectionClosed
        /// An SMTP peer answered with an unexpected code (see ``TestSupportError/reply``).
        case unexpectedReply
        /// An SMTP peer sent something that is not a reply.
        case protocolViolation
        /// A child process could not be started, or exited unsuccessfully.
        case processFailed
        /// A file, an executable or a resource is missing.
        case notFound
        /// A system call failed.
        case system
    }

    public let kind: Kind
    public let message: String
    /// The reply that caused an ``Kind/unexpectedReply`` error.
    public let reply: SMTPTestReply?

    public init(_ kind: Kind, _ message: String, reply: SMTPTestReply? = nil) {
        self.kind = kind
        self.message = message
        self.reply = reply
    }

    public var description: String {
        "\(kind): \(message)" + (reply.map { " (reply: \($0))" } ?? "")
    }

    /// An error for a failed system call, with `errno`'s text.
    static func system(_ what: String, errno code: Int32 = errno) -> TestSupportError {
        TestSupportError(.system, "\(what): \(String(cString: strerror(code)))")
    }
}
