import NIOCore

/// Turns stored content into the DATA stream sent upstream (RFC 5321 §4.5.2):
/// dot-stuffs, writes only canonical CRLF, never a NUL, and folds lines longer than
/// 998 octets with `<CRLF><SP>` as Postfix's `smtp_line_length_limit` does.
/// The terminating `.<CRLF>` is appended.
public enum DataEncoder {
    public static func encode(_ content: ByteBuffer, into out: inout ByteBuffer) {
        out.reserveCapacity(minimumWritableBytes: content.readableBytes + content.readableBytes / 64 + 8)
        content.withUnsafeReadableBytes { raw in
            var lineLength = 0
            var i = 0
            let n = raw.count
            while i < n {
                let b = raw[i]
                if b == 13 || b == 10 {
                    // Any CR, LF or CRLF ends a line; written as CRLF.
                    out.writeStaticString("\r\n")
                    lineLength = 0
                    if b == 13, i + 1 < n, raw[i + 1] == 10 { i += 1 }
                    i += 1
                    continue
                }
                if b == 0 {
                    i += 1
                    continue
                }
                if lineLength == 0, b == UInt8(ascii: ".") {
                    out.writeInteger(UInt8(ascii: "."))
                    lineLength += 1
                }
                if lineLength >= SMTPLimits.maxOutboundLine {
                    out.writeStaticString("\r\n ")
                    lineLength = 1
                }
                // Copy the run of ordinary bytes up to the next line break, NUL or fold point.
                var j = i
                let limit = min(n, i + (SMTPLimits.maxOutboundLine - lineLength))
                while j < limit {
                    let c = raw[j]
                    if c == 13 || c == 10 || c == 0 { break }
                    j += 1
                }
                out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[i..<j]))
                lineLength += j - i
                i = j
            }
            if lineLength > 0 { out.writeStaticString("\r\n") }
        }
        out.writeStaticString(".\r\n")
    }

    public static func encode(_ content: ByteBuffer) -> ByteBuffer {
        var out = ByteBuffer()
        encode(content, into: &out)
        return out
    }
}
