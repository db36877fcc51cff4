/// Reads header fields of a message (RFC 5322 §2.2): the lines before the
/// first empty line, CRLF or LF terminated, with folded lines unfolded.
enum MessageHeaders {
    /// The value of the first field called `name` (case-insensitive), without
    /// the leading space, unfolded; `nil` if there is none.
    static func value(_ name: String, in message: [UInt8]) -> String? {
        let wanted = name.lowercased()
        var found: String?
        for line in headerLines(message) {
            if let current = found {
                guard line.first == " " || line.first == "\t" else { return current }
                found = current + line
                continue
            }
            guard let colon = line.firstIndex(of: ":"), line[..<colon].lowercased() == wanted else { continue }
            found = String(line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" })
        }
        return found
    }

    private static func headerLines(_ message: [UInt8]) -> [String] {
        var lines: [String] = []
        var start = 0
        for index in message.indices where message[index] == 0x0A {
            var end = index
            if end > start && message[end - 1] == 0x0D { end -= 1 }
            if end == start { break }
            lines.append(String(decoding: message[start..<end], as: UTF8.self))
            start = index + 1
        }
        return lines
    }
}
