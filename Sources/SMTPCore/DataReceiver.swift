import NIOCore

/// What to do with a stray CR or LF inside message content (`limits.bare_newline`).
public enum BareNewlinePolicy: String, Sendable, Hashable {
    /// Turn each stray CR or LF into CRLF, as Postfix 3.9's `smtpd_forbid_bare_newline = normalize`.
    case normalize
    /// Refuse the message with `550 5.5.2` once its end has been read.
    case reject
}

/// Incremental DATA framing (RFC 5321 §4.1.1.4, §4.5.2): finds the end of the message,
/// removes dot-stuffing, and turns the content into canonical CRLF text.
///
/// Only `<CRLF>.<CRLF>` ends the data. Every other "end-of-data look-alike" from the
/// SMTP-smuggling catalogue (`<LF>.<LF>`, `<CR>.<CR>`, `<CRLF>.<CR><CRLF>`, …) never
/// ends it: the line is kept as content and the message is marked ``Outcome/smuggling``,
/// which the session answers with `550 5.5.2` after the real end — so one DATA can
/// never become two messages, and no fake terminator is ever forwarded.
/// NUL octets are never forwarded either: a message containing one is refused.
/// Content beyond `maxSize` is read and dropped, so memory stays bounded.
public struct DataReceiver: Sendable {
    public enum Outcome: Sendable, Hashable {
        case ok
        /// Larger than the limit: `552 5.3.4`.
        case tooLarge
        /// A stray CR or LF under ``BareNewlinePolicy/reject``: `550 5.5.2`.
        case bareNewline
        /// A fake end-of-data sequence was seen: `550 5.5.2`.
        case smuggling
        /// A NUL octet: `550 5.6.0`.
        case nul

        /// The reply for a refused message; `nil` for ``ok``.
        public var reply: SMTPReply? {
            switch self {
            case .ok: return nil
            case .tooLarge: return SMTPReply(552, "5.3.4", "Error: message file too big")
            case .bareNewline: return SMTPReply(550, "5.5.2", "Error: bare <CR> or <LF> received; use <CR><LF>")
            case .smuggling: return SMTPReply(550, "5.5.2", "Error: non-standard end-of-data sequence in message")
            case .nul: return SMTPReply(550, "5.6.0", "Error: NUL character in message")
            }
        }
    }

    enum State: Sendable {
        case lineStart(canonical: Bool)
        case text
        case cr
        case dot(canonical: Bool)
        case dotCR(canonical: Bool)
        case done
    }

    public let maxSize: Int
    public let bareNewline: BareNewlinePolicy
    private var state: State = .lineStart(canonical: true)
    /// The canonical, unstuffed content received so far (bounded by `maxSize`).
    public private(set) var content: ByteBuffer
    /// The size of the whole canonical content, counted even past `maxSize`.
    public private(set) var size: Int = 0
    public private(set) var outcome: Outcome = .ok
    /// Whether any octet of the content has the high bit set (8-bit content), found
    /// while framing so that nothing scans the message again for it.
    public var eightBit: Bool { highBits & 0x80 != 0 }
    private var highBits: UInt8 = 0

    public init(maxSize: Int, bareNewline: BareNewlinePolicy, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.maxSize = maxSize
        self.bareNewline = bareNewline
        self.content = allocator.buffer(capacity: min(maxSize, 16 * 1024))
    }

    public var isComplete: Bool {
        if case .done = state { return true }
        return false
    }

    /// Consumes bytes from `input` up to and including the end-of-data line. Returns
    /// `true` when the end was found; the bytes after it stay in `input` (pipelined commands).
    public mutating func consume(_ input: inout ByteBuffer) -> Bool {
        let (found, consumed) = input.withUnsafeReadableBytes { raw -> (Bool, Int) in
            var i = 0
            let n = raw.count
            while i < n {
                let b = raw[i]
                switch state {
                case .text:
                    // Fast path: copy a run of ordinary bytes at once — across line
                    // ends too, while a CRLF is followed by a byte that needs nothing
                    // (not a dot, CR, LF or NUL), so whole paragraphs go in one copy.
                    var high: UInt8 = 0
                    var j = ByteScan.firstLineBreakOrNUL(raw, from: i, high: &high)
                    while j + 2 < n, raw[j] == 13, raw[j + 1] == 10 {
                        let next = raw[j + 2]
                        guard next != UInt8(ascii: "."), next != 13, next != 10, next != 0 else { break }
                        j = ByteScan.firstLineBreakOrNUL(raw, from: j + 2, high: &high)
                    }
                    highBits |= high
                    if j > i {
                        append(UnsafeRawBufferPointer(rebasing: raw[i..<j]))
                        i = j
                        continue
                    }
                    if b == 13 {
                        state = .cr
                    } else if b == 10 {
                        strayNewline()
                        appendCRLF()
                        state = .lineStart(canonical: false)
                    } else {  // NUL
                        mark(.nul)
                    }
                    i += 1
                case .cr:
                    if b == 10 {
                        appendCRLF()
                        state = .lineStart(canonical: true)
                        i += 1
                    } else {
                        // A bare CR: a line ending of its own; reprocess `b` at line start.
                        strayNewline()
                        appendCRLF()
                        state = .lineStart(canonical: false)
                    }
                case .lineStart(let canonical):
                    if b == UInt8(ascii: ".") {
                        state = .dot(canonical: canonical)
                        i += 1
                    } else {
                        state = .text
                    }
                case .dot(let canonical):
                    if b == 13 {
                        state = .dotCR(canonical: canonical)
                        i += 1
                    } else if b == 10 {
                        // `.<LF>`: a fake terminator.
                        mark(.smuggling)
                        appendDot()
                        appendCRLF()
                        state = .lineStart(canonical: false)
                        i += 1
                    } else if b == UInt8(ascii: ".") {
                        // Dot-stuffing: the first dot goes, the second is content.
                        appendDot()
                        state = .text
                        i += 1
                    } else {
                        // RFC 5321 §4.5.2: "If the first character is a period and there
                        // are other characters on the line, the first character is deleted."
                        state = .text
                    }
                case .dotCR(let canonical):
                    if b == 10 {
                        i += 1
                        if canonical {
                            state = .done
                            return (true, i)
                        }
                        // `<LF>.<CRLF>` or `<CR>.<CRLF>`: not an end.
                        mark(.smuggling)
                        appendDot()
                        appendCRLF()
                        state = .lineStart(canonical: true)
                    } else {
                        // `.<CR>` followed by anything but LF: a fake terminator.
                        mark(.smuggling)
                        appendDot()
                        appendCRLF()
                        state = .lineStart(canonical: false)
                    }
                case .done:
                    return (true, i)
                }
            }
            return (false, n)
        }
        input.moveReaderIndex(forwardBy: consumed)
        return found
    }

    private mutating func strayNewline() {
        if bareNewline == .reject { mark(.bareNewline) }
    }

    private mutating func mark(_ o: Outcome) {
        // The first serious problem wins; size is reported over everything else.
        if outcome == .ok { outcome = o }
    }

    private mutating func appendDot() {
        var dot = UInt8(ascii: ".")
        withUnsafeBytes(of: &dot) { append($0) }
    }

    private mutating func appendCRLF() {
        size += 2
        if size <= maxSize {
            content.writeStaticString("\r\n")
        } else {
            outcome = .tooLarge
        }
    }

    private mutating func append(_ bytes: UnsafeRawBufferPointer) {
        size += bytes.count
        if size <= maxSize {
            content.writeBytes(bytes)
        } else {
            outcome = .tooLarge
        }
    }
}
