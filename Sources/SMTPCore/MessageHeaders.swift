import NIOCore

/// Reads the header block of canonical message content (RFC 5322 §2.2), unfolded,
/// for the `data` policy phase. Bounded by ``SMTPLimits/maxHeaderBlock``.
public enum MessageHeaders {
    public static func parse(_ content: ByteBuffer) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = []
        let limit = min(content.readableBytes, SMTPLimits.maxHeaderBlock)
        guard let bytes = content.getBytes(at: content.readerIndex, length: limit) else { return [] }
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        var i = 0
        while i + 1 < bytes.count {
            if bytes[i] == 13, bytes[i + 1] == 10 {
                let line = bytes[start..<i]
                if line.isEmpty { break }
                lines.append(line)
                start = i + 2
                i += 2
                continue
            }
            i += 1
        }
        for line in lines {
            if let first = line.first, first == 32 || first == 9 {
                guard !headers.isEmpty else { continue }
                headers[headers.count - 1].value += " " + String(decoding: line, as: UTF8.self).trimmingSpaces()
                continue
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self).trimmingSpaces()
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingSpaces()
            guard !name.isEmpty else { continue }
            headers.append((name, value))
        }
        return headers
    }
}
