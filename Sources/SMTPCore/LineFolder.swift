import NIOCore

/// Folds lines longer than ``SMTPLimits/maxOutboundLine`` (998 octets, RFC 5322
/// §2.1.1) with `<CRLF><SP>`, as Postfix's `smtp_line_length_limit` does, when a
/// message is received — before the policy stages see it — so that what a stage
/// signs (DKIM) is what is stored and sent. ``DataEncoder`` folds the same way at
/// delivery, which then finds nothing left to fold: a line that starts with a dot is
/// folded one octet earlier, since the dot is doubled on the wire.
public enum LineFolder {
    /// `content` (canonical CRLF lines) with its long lines folded, or `nil` when no
    /// line is longer than the limit (the common case: no copy).
    public static func fold(_ content: ByteBuffer) -> ByteBuffer? {
        let limit = SMTPLimits.maxOutboundLine
        let needed = content.withUnsafeReadableBytes { raw -> Bool in
            var i = 0
            var high: UInt8 = 0
            while i < raw.count {
                let end = ByteScan.firstLineBreakOrNUL(raw, from: i, high: &high)
                if end - i + stuffing(raw, i, end) > limit { return true }
                i = end + 1
            }
            return false
        }
        guard needed else { return nil }
        var out = ByteBufferAllocator().buffer(capacity: content.readableBytes + content.readableBytes / 256 + 8)
        content.withUnsafeReadableBytes { raw in
            var i = 0
            var high: UInt8 = 0
            while i < raw.count {
                let end = ByteScan.firstLineBreakOrNUL(raw, from: i, high: &high)
                // A line starting with a dot goes out dot-stuffed: the extra dot counts.
                var length = stuffing(raw, i, end)
                var at = i
                while at < end {
                    if length >= limit {
                        out.writeStaticString("\r\n ")
                        length = 1
                    }
                    let take = min(end - at, limit - length)
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[at..<(at + take)]))
                    length += take
                    at += take
                }
                if end < raw.count { out.writeInteger(raw[end]) }
                i = end + 1
            }
        }
        return out
    }

    /// 1 when the line `raw[start..<end]` starts with a dot (dot-stuffed on the wire).
    @inline(__always)
    static func stuffing(_ raw: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Int {
        start < end && raw[start] == UInt8(ascii: ".") ? 1 : 0
    }
}
