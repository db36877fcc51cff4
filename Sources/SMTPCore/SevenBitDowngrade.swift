import NIOCore

/// Converts an 8-bit message to 7-bit for an upstream without 8BITMIME, as Postfix does
/// (RELIABILITY C16): every 8-bit leaf part — the top-level body, MIME parts, the parts of
/// an attached `message/rfc822` — is re-encoded as quoted-printable (RFC 2045 §6.7), its
/// `Content-Transfer-Encoding` replaced; multiparts are walked by their boundaries and a
/// multipart's or message's own `8bit` label becomes `7bit`. Parts already 7-bit are kept
/// byte for byte. 8-bit in a header (or in a multipart's preamble or epilogue, or in a part
/// that claims to be base64 or quoted-printable already) cannot be converted: `nil`.
///
/// The input is canonical CRLF, as the spool keeps it; so is the output, with lines of at
/// most 76 octets in every converted part.
public enum SevenBitDowngrade {
    /// Deeper MIME nesting is not converted (the message bounces, headers only): the
    /// walk recurses, and a hostile message could nest a part in a part until the stack
    /// runs out — on every retry.
    public static let maxDepth = 64

    public static func downgrade(_ content: ByteBuffer) -> ByteBuffer? {
        let bytes = Array(content.readableBytesView)
        guard var out = entity(bytes[...], defaultType: "text/plain", topLevel: true) else { return nil }
        var buffer = ByteBufferAllocator().buffer(capacity: out.count)
        buffer.writeBytes(out)
        out.removeAll()
        return buffer
    }

    /// One MIME entity: header fields, a blank line, a body.
    static func entity(_ bytes: ArraySlice<UInt8>, defaultType: String, topLevel: Bool = false, depth: Int = 0) -> [UInt8]? {
        guard depth <= maxDepth else { return nil }
        let (header, body) = splitHeader(bytes)
        guard !header.contains(where: { $0 >= 0x80 }) else { return nil }
        guard body.contains(where: { $0 >= 0x80 }) else { return Array(bytes) }
        var fields = headerFields(header)
        let type = fieldValue(fields, "content-type").map(mediaType) ?? defaultType
        let encoding = fieldValue(fields, "content-transfer-encoding").map { $0.trimmed().lowercased() } ?? "7bit"
        var newBody: [UInt8]
        if type.hasPrefix("multipart/") {
            guard let contentType = fieldValue(fields, "content-type"), let boundary = parameter(contentType, "boundary"),
                let walked = multipart(body, boundary: boundary, partType: type == "multipart/digest" ? "message/rfc822" : "text/plain", depth: depth + 1)
            else { return nil }
            newBody = walked
            relabel(&fields, from: encoding)
        } else if type == "message/rfc822" || type == "message/global" {
            guard let inner = entity(body, defaultType: "text/plain", depth: depth + 1) else { return nil }
            newBody = inner
            relabel(&fields, from: encoding)
        } else {
            // Already encoded, but with 8-bit octets: broken; nothing safe to do.
            guard ["7bit", "8bit", "binary"].contains(encoding) else { return nil }
            newBody = QuotedPrintable.encode(body)
            fields.removeAll { fieldName($0) == "content-transfer-encoding" }
            fields.append(Array("Content-Transfer-Encoding: quoted-printable\r\n".utf8))
            if topLevel, fieldValue(fields, "mime-version") == nil {
                fields.append(Array("MIME-Version: 1.0\r\n".utf8))
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(header.count + newBody.count + 64)
        for field in fields { out += field }
        out += [13, 10]
        out += newBody
        return out
    }

    /// A multipart's or message's own label: only 7bit, 8bit or binary are allowed
    /// (RFC 2045 §6.4), and after the conversion it is 7-bit.
    static func relabel(_ fields: inout [[UInt8]], from encoding: String) {
        guard encoding == "8bit" || encoding == "binary" else { return }
        fields.removeAll { fieldName($0) == "content-transfer-encoding" }
        fields.append(Array("Content-Transfer-Encoding: 7bit\r\n".utf8))
    }

    /// The parts between `--boundary` lines, each converted; preamble and epilogue kept.
    static func multipart(_ body: ArraySlice<UInt8>, boundary: String, partType: String, depth: Int) -> [UInt8]? {
        let delimiter = Array("--\(boundary)".utf8)
        var out: [UInt8] = []
        var partStart: Int?
        var index = body.startIndex
        var closed = false
        var epilogueStart = body.endIndex
        while index < body.endIndex {
            let lineEnd = lineEnd(body, from: index)
            let line = body[index..<lineEnd.content]
            if !closed, line.starts(with: delimiter) {
                let rest = line.dropFirst(delimiter.count)
                let isClose = rest.starts(with: [45, 45])
                let tail = isClose ? rest.dropFirst(2) : rest
                if tail.allSatisfy({ $0 == 32 || $0 == 9 }) {
                    if let start = partStart {
                        // The CRLF before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
                        var end = index
                        if end - start >= 2, body[end - 2] == 13, body[end - 1] == 10 { end -= 2 }
                        guard let part = entity(body[start..<end], defaultType: partType, depth: depth) else { return nil }
                        out += part
                        if end != index { out += [13, 10] }
                    } else if body[body.startIndex..<index].contains(where: { $0 >= 0x80 }) {
                        return nil
                    } else {
                        out += body[body.startIndex..<index]
                    }
                    out += body[index..<lineEnd.next]
                    partStart = isClose ? nil : lineEnd.next
                    closed = isClose
                    if isClose { epilogueStart = lineEnd.next }
                    index = lineEnd.next
                    continue
                }
            }
            index = lineEnd.next
        }
        if closed {
            let epilogue = body[epilogueStart...]
            guard !epilogue.contains(where: { $0 >= 0x80 }) else { return nil }
            return out + epilogue
        }
        // No close delimiter: the last part runs to the end (or there were no parts).
        guard let start = partStart else { return nil }
        guard let part = entity(body[start...], defaultType: partType, depth: depth) else { return nil }
        return out + part
    }

    /// Splits at the first empty line; the header keeps its last CRLF. A message that
    /// starts with CRLF has no header.
    static func splitHeader(_ bytes: ArraySlice<UInt8>) -> (header: ArraySlice<UInt8>, body: ArraySlice<UInt8>) {
        if bytes.starts(with: [13, 10]) { return (bytes.prefix(0), bytes.dropFirst(2)) }
        var i = bytes.startIndex
        while i + 3 < bytes.endIndex {
            if bytes[i] == 13, bytes[i + 1] == 10, bytes[i + 2] == 13, bytes[i + 3] == 10 {
                return (bytes[bytes.startIndex..<(i + 2)], bytes[(i + 4)...])
            }
            i += 1
        }
        // Only header fields (no body): nothing to convert in a body.
        return (bytes, bytes.suffix(0))
    }

    /// Header fields, each with its folded continuation lines and final CRLF.
    static func headerFields(_ header: ArraySlice<UInt8>) -> [[UInt8]] {
        var fields: [[UInt8]] = []
        var index = header.startIndex
        while index < header.endIndex {
            let end = lineEnd(header, from: index).next
            let line = Array(header[index..<end])
            if let first = line.first, first == 32 || first == 9, !fields.isEmpty {
                fields[fields.count - 1] += line
            } else {
                fields.append(line)
            }
            index = end
        }
        return fields
    }

    static func fieldName(_ field: [UInt8]) -> String? {
        guard let colon = field.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        return String(decoding: field[..<colon], as: UTF8.self).trimmed().lowercased()
    }

    /// The unfolded value of the first field called `name`.
    static func fieldValue(_ fields: [[UInt8]], _ name: String) -> String? {
        guard let field = fields.first(where: { fieldName($0) == name }), let colon = field.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let value = field[(colon + 1)...].filter { $0 != 13 && $0 != 10 }
        return String(decoding: value, as: UTF8.self)
    }

    /// `text/plain` from `Text/Plain; charset=utf-8`.
    static func mediaType(_ value: String) -> String {
        String(value.split(separator: ";", maxSplits: 1).first ?? "").trimmed().lowercased()
    }

    /// A parameter's value, unquoted (`boundary="a b"` → `a b`).
    static func parameter(_ value: String, _ name: String) -> String? {
        for piece in value.split(separator: ";").dropFirst() {
            let pair = piece.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmed().lowercased() == name else { continue }
            var v = pair[1].trimmed()
            if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 { v = String(v.dropFirst().dropLast()) }
            return v.isEmpty ? nil : v
        }
        return nil
    }

    /// Where the line starting at `from` ends: before its CRLF, and after it.
    static func lineEnd(_ bytes: ArraySlice<UInt8>, from: Int) -> (content: Int, next: Int) {
        var i = from
        while i < bytes.endIndex {
            if bytes[i] == 10 { return (i > from && bytes[i - 1] == 13 ? i - 1 : i, i + 1) }
            i += 1
        }
        return (bytes.endIndex, bytes.endIndex)
    }
}

/// Quoted-printable (RFC 2045 §6.7) for content with CRLF line breaks.
public enum QuotedPrintable {
    /// Encodes `bytes`: CRLF stays a hard line break, lines are at most 76 octets with
    /// `=` soft breaks, `=`, non-ASCII and control octets become `=XX`, and a space or tab
    /// at the end of a line is encoded so that no transport can strip it.
    public static func encode(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 8 + 16)
        var lineLength = 0
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            if b == 13, i + 1 < bytes.endIndex, bytes[i + 1] == 10 {
                out += [13, 10]
                lineLength = 0
                i += 2
                continue
            }
            let atLineEnd = i + 1 == bytes.endIndex || (bytes[i + 1] == 13 && i + 2 < bytes.endIndex && bytes[i + 2] == 10)
            let literal = (b >= 33 && b <= 126 && b != 61) || ((b == 32 || b == 9) && !atLineEnd)
            let width = literal ? 1 : 3
            // Room for the token and, unless the line ends here, a soft break's "=".
            if lineLength + width > (atLineEnd ? 76 : 75) {
                out += [61, 13, 10]
                lineLength = 0
            }
            if literal {
                out.append(b)
            } else {
                out += [61, hex[Int(b >> 4)], hex[Int(b & 15)]]
            }
            lineLength += width
            i += 1
        }
        return out
    }

    /// Decodes quoted-printable with CRLF line breaks (soft breaks removed); `nil` for a
    /// malformed escape.
    public static func decode(_ bytes: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        var i = bytes.startIndex
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 65...70: return c - 55
            case 97...102: return c - 87
            default: return nil
            }
        }
        while i < bytes.endIndex {
            let b = bytes[i]
            guard b == 61 else { out.append(b); i += 1; continue }
            if i + 2 < bytes.endIndex, bytes[i + 1] == 13, bytes[i + 2] == 10 { i += 3; continue }
            guard i + 2 < bytes.endIndex, let high = value(bytes[i + 1]), let low = value(bytes[i + 2]) else { return nil }
            out.append(high << 4 | low)
            i += 3
        }
        return out
    }
}

extension StringProtocol {
    fileprivate func trimmed() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
