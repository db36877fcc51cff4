import Foundation
import Logging
import NIOConcurrencyHelpers
import TollgateConsole

#if canImport(Glibc)
import Glibc
#endif

/// Logging to stderr, as text or one JSON object a line (`log.format`).
public enum LogSetup {
    /// With `tally`, the accepted, refused and delivery events are also counted for the
    /// web console's statistics (``TallyingLogHandler``).
    public static func bootstrap(format: String, level: String, tally: EventTally? = nil) {
        let logLevel = Logger.Level(rawValue: level) ?? .info
        let style: RelayLogHandler.Format = format == "json" ? .json : .text
        LoggingSystem.bootstrap { label in
            var handler = RelayLogHandler(label: label, format: style)
            handler.logLevel = logLevel
            guard let tally else { return handler }
            return TallyingLogHandler(handler, tally: tally, clock: { Date().timeIntervalSince1970 })
        }
    }
}

/// Writes each event as one line to stderr with one `write(2)`: text
/// (`TIMESTAMP LEVEL LABEL: key=value … [SOURCE] MESSAGE`, keys sorted, values quoted as
/// logfmt quotes them) or a JSON object. Timestamps are UTC, formatted once a second, so no time zone is looked up
/// per line; nothing is shared between events but that cached second.
public struct RelayLogHandler: LogHandler {
    public enum Format: Sendable {
        case text, json
    }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String
    let format: Format

    public init(label: String, format: Format) {
        self.label = label
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = render(event, timestamp: Self.timestamp())
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0, errno == EINTR { continue }
                if n <= 0 { break }
                offset += n
            }
        }
    }

    /// The line for `event`, newline included.
    func render(_ event: LogEvent, timestamp: String) -> String {
        var fields = metadata
        if let extra = event.metadata {
            fields.merge(extra) { $1 }
        }
        let keys = fields.keys.sorted()
        var line: String
        switch format {
        case .text:
            line = "\(timestamp) \(event.level) \(label):"
            for key in keys { line += " \(key)=" + Self.fieldValue("\(fields[key]!)") }
            line += " [\(event.source)] " + Self.oneLine("\(event.message)") + "\n"
        case .json:
            line = "{\"ts\":\(Self.json(timestamp)),\"level\":\(Self.json(event.level.rawValue)),\"logger\":\(Self.json(label)),\"msg\":\(Self.json("\(event.message)"))"
            for key in keys { line += ",\(Self.json(key)):\(Self.json("\(fields[key]!)"))" }
            line += "}\n"
        }
        return line
    }

    /// A field's value as logfmt writes it: bare when it holds no space, `=`, `"` or
    /// control character (and is not empty), else in double quotes with `"` and `\`
    /// backslash-escaped, and control characters (C0, DEL, C1, the line and paragraph
    /// separators) as `\n`, `\r`, `\t` or `\u00XX`. So a value
    /// a client chose (`AUTH` name, `EHLO`, an address) cannot add a field of its own:
    /// `smtp.auth.user="x event=accepted"` is one field, however it is split.
    static func fieldValue(_ s: String) -> String {
        guard s.isEmpty || s.unicodeScalars.contains(where: { $0 == " " || $0 == "=" || $0 == "\"" || isQuotedControl($0) }) else {
            return s
        }
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                // `\u00XX`, the escape logfmt readers (go-logfmt, Loki) decode; an
                // unknown one (`\x01`) would make the whole line unreadable to them.
                if isQuotedControl(scalar) {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// The characters a field's value never holds raw: C0, DEL, C1, and the line and
    /// paragraph separators (some readers end a line at them).
    static func isQuotedControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
    }

    /// `s` with CR, LF and other control characters escaped, so that a value a client
    /// chose (a login name, an address, an upstream's reply) cannot forge a log line.
    static func oneLine(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return s }
        var out = ""
        for scalar in s.unicodeScalars { appendEscaped(scalar, to: &out) }
        return out
    }

    /// `scalar`, or its escape (`\n`, `\r`, `\t`, `\xNN`) if it is a control character.
    private static func appendEscaped(_ scalar: Unicode.Scalar, to out: inout String) {
        switch scalar {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }

    /// A JSON string literal (RFC 8259 §7).
    static func json(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += "\\u00" + String(scalar.value >> 4, radix: 16) + String(scalar.value & 0xF, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    private static let second = NIOLockedValueBox((seconds: -1, text: ""))

    /// `2026-12-01T22:40:07.123Z`.
    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let seconds = Int(ts.tv_sec)
        let prefix = second.withLockedValue { cached -> String in
            if cached.seconds == seconds { return cached.text }
            var t = time_t(seconds)
            var parts = tm()
            gmtime_r(&t, &parts)
            var buffer = [Int8](repeating: 0, count: 32)
            let n = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
            let text = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            cached = (seconds, text)
            return text
        }
        let millis = ts.tv_nsec / 1_000_000
        return prefix + (millis < 10 ? ".00" : millis < 100 ? ".0" : ".") + String(millis) + "Z"
    }
}
