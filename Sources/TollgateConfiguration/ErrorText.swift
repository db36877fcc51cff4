import Foundation

/// One readable sentence for an error an administrator sees (a queue entry's last
/// error, `tollgate check`, a log line): Foundation's file errors become
/// "PATH: what is wrong" rather than `Error Domain=NSCocoaErrorDomain Code=516 …`
/// dumps, POSIX errors their `strerror` text; anything else its own description on
/// one line.
public enum ErrorText {
    public static func describe(_ error: any Error) -> String {
        guard error is CocoaError || error is POSIXError || type(of: error) is NSError.Type else {
            return oneLine("\(error)")
        }
        let ns = error as NSError
        let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
        var reason: String
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(underlying.code)))
        } else if ns.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(ns.code)))
        } else if ns.domain == NSCocoaErrorDomain, let known = cocoa[ns.code] {
            reason = known
        } else {
            reason = ns.localizedDescription
        }
        reason = oneLine(reason)
        return path.map { "\($0): \(reason)" } ?? reason
    }

    /// Foundation's file error codes (CocoaError.Code) that come without a POSIX cause.
    static let cocoa: [Int: String] = [
        4: "No such file or directory",
        257: "Permission denied",
        260: "No such file or directory",
        513: "Permission denied",
        516: "a file of that name already exists (expected a folder, or a new file)",
        640: "No space left on device",
        642: "Read-only file system",
    ]

    static func oneLine(_ s: String) -> String {
        s.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
    }
}
