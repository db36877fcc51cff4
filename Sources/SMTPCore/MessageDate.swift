#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Dates in message headers (RFC 5322 §3.3).
public enum MessageDate {
    /// `Sun, 29 Nov 2026 03:26:47 +0000`, for seconds since 1970.
    public static func rfc5322(_ date: Double) -> String {
        var t = time_t(date)
        var tmValue = tm()
        gmtime_r(&t, &tmValue)
        var buffer = [Int8](repeating: 0, count: 64)
        let n = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S +0000", &tmValue)
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
