import NIOCore

/// Canonicalises BDAT chunks (RFC 3030): no dot-stuffing, but the same CR/LF and NUL
/// discipline as ``DataReceiver`` so nothing non-canonical is ever stored or forwarded.
public struct ContentNormalizer: Sendable {
    public let maxSize: Int
    public let bareNewline: BareNewlinePolicy
    public private(set) var content: ByteBuffer
    public private(set) var size = 0
    public private(set) var outcome: DataReceiver.Outcome = .ok
    /// Whether any octet of the content has the high bit set.
    public var eightBit: Bool { highBits & 0x80 != 0 }
    private var highBits: UInt8 = 0
    private var pendingCR = false

    public init(maxSize: Int, bareNewline: BareNewlinePolicy, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.maxSize = maxSize
        self.bareNewline = bareNewline
        self.content = allocator.buffer(capacity: min(maxSize, 16 * 1024))
    }

    /// Appends one chunk's bytes.
    public mutating func append(_ chunk: ByteBuffer) {
        chunk.withUnsafeReadableBytes { raw in
            var i = 0
            let n = raw.count
            var high: UInt8 = 0
            defer { highBits |= high }
            while i < n {
                if pendingCR {
                    pendingCR = false
                    if raw[i] == 10 {
                        write(crlf: true)
                        i += 1
                        continue
                    }
                    stray()
                    write(crlf: true)
                }
                // The run up to the next CR, LF or NUL, eight bytes at a time.
                let j = ByteScan.firstLineBreakOrNUL(raw, from: i, high: &high)
                write(UnsafeRawBufferPointer(rebasing: raw[i..<j]))
                guard j < n else { break }
                i = j + 1
                switch raw[j] {
                case 13: pendingCR = true
                case 10:
                    stray()
                    write(crlf: true)
                default:
                    if outcome == .ok { outcome = .nul }
                }
            }
        }
    }

    /// Ends the content: a trailing CR becomes CRLF, and content that does not end
    /// with CRLF gets one (RFC 5322 messages end with a line break).
    public mutating func finish() {
        if pendingCR {
            pendingCR = false
            stray()
            write(crlf: true)
        }
        if size > 0, size <= maxSize {
            let last = content.getBytes(at: content.writerIndex - min(2, content.readableBytes), length: min(2, content.readableBytes)) ?? []
            if last != [13, 10] { write(crlf: true) }
        }
    }

    private mutating func stray() {
        if bareNewline == .reject, outcome == .ok { outcome = .bareNewline }
    }

    private mutating func write(crlf: Bool) {
        size += 2
        if size <= maxSize { content.writeStaticString("\r\n") } else { outcome = .tooLarge }
    }

    private mutating func write(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        size += bytes.count
        if size <= maxSize { content.writeBytes(bytes) } else { outcome = .tooLarge }
    }
}
