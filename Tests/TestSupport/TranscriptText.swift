/// The two small text languages of a transcript: `{…}` expansions (in `>`, `>>` and
/// `<` lines) and backslash escapes (in `>>` lines only).
enum TranscriptText {
    /// Replaces `{i}` with `pass` (the innermost `repeat` pass) and `{TEXT*N}` with
    /// TEXT repeated N times; any other `{` stays as it is. Throws a message.
    static func expand(_ source: String, pass: Int?) throws(TranscriptText.Failure) -> String {
        var result = ""
        var rest = Substring(source)
        while let open = rest.firstIndex(of: "{") {
            result += rest[..<open]
            let afterOpen = rest.index(after: open)
            guard let close = rest[afterOpen...].firstIndex(of: "}") else {
                result += rest[open...]
                return result
            }
            let inner = rest[afterOpen..<close]
            if inner == "i" {
                guard let pass else { throw Failure("{i} outside a repeat block") }
                result += String(pass)
            } else if let star = inner.lastIndex(of: "*"), let count = Int(inner[inner.index(after: star)...]), count >= 0, !inner[..<star].isEmpty {
                result += String(repeating: String(inner[..<star]), count: count)
            } else {
                result += rest[open...close]
            }
            rest = rest[rest.index(after: close)...]
        }
        return result + rest
    }

    /// The bytes of a `>>` line: `\r`, `\n`, `\t`, `\0`, `\xHH` and `\\` are escapes,
    /// everything else is sent as UTF-8. An unknown escape is an error (a typo).
    static func unescape(_ source: String) throws(TranscriptText.Failure) -> [UInt8] {
        var bytes: [UInt8] = []
        var input = Array(source.utf8)[...]
        while let byte = input.popFirst() {
            guard byte == UInt8(ascii: "\\") else {
                bytes.append(byte)
                continue
            }
            switch input.popFirst().map({ Character(Unicode.Scalar($0)) }) {
            case "r": bytes.append(13)
            case "n": bytes.append(10)
            case "t": bytes.append(9)
            case "0": bytes.append(0)
            case "\\": bytes.append(UInt8(ascii: "\\"))
            case "x":
                let digits = String(decoding: input.prefix(2), as: UTF8.self)
                guard digits.count == 2, let value = UInt8(digits, radix: 16) else { throw Failure("\\x needs two hex digits") }
                bytes.append(value)
                input = input.dropFirst(2)
            case let other:
                throw Failure("unknown escape \\\(other.map(String.init) ?? "") (use \\r \\n \\t \\0 \\xHH \\\\)")
            }
        }
        return bytes
    }

    struct Failure: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }
}
