import NIOCore

/// Turns stored content into the DATA stream sent upstream (RFC 5321 §4.5.2):
/// dot-stuffs, writes only canonical CRLF, never a NUL, and folds lines longer than
/// 998 octets with `<CRLF><SP>` as Postfix's `smtp_line_length_limit` does.
/// The terminating `.<CRLF>` is appended.
///
/// Any CR, LF or CRLF ends a line. Runs of ordinary bytes are found eight bytes at a
/// time and copied whole.
public enum DataEncoder {
    /// Encodes `prefix` (trace header lines) and then `content` as one message.
    public static func encode(_ content: ByteBuffer, prefix: String = "", into out: inout ByteBuffer) {
        out.reserveCapacity(minimumWritableBytes: prefix.utf8.count + content.readableBytes + content.readableBytes / 64 + 8)
        var line = LineState()
        var prefix = prefix
        prefix.withUTF8 { line.encode(UnsafeRawBufferPointer($0), into: &out) }
        content.withUnsafeReadableBytes { line.encode($0, into: &out) }
        if line.length > 0 { out.writeStaticString("\r\n") }
        out.writeStaticString(".\r\n")
    }

    public static func encode(_ content: ByteBuffer, prefix: String = "") -> ByteBuffer {
        var out = ByteBuffer()
        encode(content, prefix: prefix, into: &out)
        return out
    }

    /// Where the output stands on its current line, across the parts of a message.
    struct LineState {
        var length = 0
        /// The last byte was a CR that ended a line: an LF right after it is its pair.
        var afterCR = false

        mutating func encode(_ raw: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
            var i = 0
            let n = raw.count
            var high: UInt8 = 0
            while i < n {
                let b = raw[i]
                if b == 13 || b == 10 {
                    if b == 10, afterCR {
                        afterCR = false
                        i += 1
                        continue
                    }
                    out.writeStaticString("\r\n")
                    length = 0
                    afterCR = b == 13
                    i += 1
                    continue
                }
                afterCR = false
                if b == 0 {
                    i += 1
                    continue
                }
                if length == 0, b == UInt8(ascii: ".") {
                    out.writeInteger(UInt8(ascii: "."))
                    length = 1
                }
                // The run of ordinary bytes up to the next line break or NUL, folded.
                var end = ByteScan.firstLineBreakOrNUL(raw, from: i, high: &high)
                if length + (end - i) <= SMTPLimits.maxOutboundLine {
                    // Whole lines that need nothing (canonical CRLF, then neither a dot
                    // nor another break, and short enough) go out in one copy.
                    var last = length + (end - i)
                    while end + 2 < n, raw[end] == 13, raw[end + 1] == 10 {
                        let next = raw[end + 2]
                        guard next != UInt8(ascii: "."), next != 13, next != 10, next != 0 else { break }
                        let lineEnd = ByteScan.firstLineBreakOrNUL(raw, from: end + 2, high: &high)
                        guard lineEnd - (end + 2) <= SMTPLimits.maxOutboundLine else { break }
                        last = lineEnd - (end + 2)
                        end = lineEnd
                    }
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[i..<end]))
                    length = last
                    i = end
                    continue
                }
                while i < end {
                    if length >= SMTPLimits.maxOutboundLine {
                        out.writeStaticString("\r\n ")
                        length = 1
                    }
                    let take = min(end - i, SMTPLimits.maxOutboundLine - length)
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[i..<(i + take)]))
                    length += take
                    i += take
                }
            }
        }
    }
}
