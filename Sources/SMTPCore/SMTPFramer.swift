import NIOCore

/// Message content as the client sent it, framed and canonicalised: the body of one
/// DATA (RFC 5321 §4.1.1.4) or of all BDAT chunks (RFC 3030), with what was learnt
/// while every byte went past, so nothing scans it again.
public struct ReceivedContent: Sendable {
    /// Canonical CRLF text without dot-stuffing (at most the size limit is kept).
    public var content: ByteBuffer
    /// The whole canonical size, counted even past the limit.
    public var size: Int
    /// Whether the content is acceptable, and the refusal if not.
    public var outcome: DataReceiver.Outcome
    /// Whether an octet with the high bit set occurred.
    public var eightBit: Bool

    public init(content: ByteBuffer, size: Int, outcome: DataReceiver.Outcome, eightBit: Bool) {
        self.content = content
        self.size = size
        self.outcome = outcome
        self.eightBit = eightBit
    }
}

/// The size limit and stray-newline rule that apply to one message's content.
public struct ContentLimits: Sendable, Hashable {
    public var maxSize: Int
    public var bareNewline: BareNewlinePolicy

    public init(maxSize: Int, bareNewline: BareNewlinePolicy) {
        self.maxSize = maxSize
        self.bareNewline = bareNewline
    }
}

/// Incremental framing of what a client sends (RFC 5321 §2.3.8, §4.1.1.4; RFC 3030):
/// command lines, DATA content up to its end, and BDAT chunks.
///
/// All-or-nothing: ``next(lineLimit:)`` returns a frame only when it is complete, and
/// bytes of later frames stay buffered (pipelined commands). Bounded: a command line
/// longer than the limit is reported once and skipped without being buffered, DATA
/// beyond the size limit is counted and dropped, and ``bufferedBytes`` lets the
/// caller stop reading while a backlog waits. What the framer expects next is set
/// by the session (``expectData(_:allocator:)``, ``expectChunk(size:last:discard:first:limits:allocator:)``,
/// ``ignoreInput()``), never guessed from the bytes.
public struct SMTPFramer: Sendable {
    public enum Frame: Sendable {
        /// A command line, without its line ending.
        case line([UInt8])
        /// A command line longer than the limit; its rest is skipped.
        case lineTooLong
        /// The end of DATA was read.
        case data(ReceivedContent)
        /// One BDAT chunk was read (`size` octets). For the last chunk, `content`
        /// carries the whole message; for a discarded chunk it is `nil`.
        case chunk(size: Int, last: Bool, content: ReceivedContent?)
    }

    enum Mode: Sendable {
        case command
        case discardingLine
        case data(DataReceiver)
        case chunk(remaining: Int, size: Int, last: Bool, discard: Bool)
        /// Between the 220 to STARTTLS and the end of the handshake: bytes are dropped.
        case ignoring
    }

    private var buffer: ByteBuffer
    private var mode: Mode = .command
    /// The content of a BDAT transfer, across its chunks.
    private var chunks: ContentNormalizer?

    public init(allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        buffer = allocator.buffer(capacity: 1024)
    }

    /// Bytes received and not yet framed.
    public var bufferedBytes: Int { buffer.readableBytes }

    /// Whether input is being dropped (``ignoreInput()``).
    public var ignoresInput: Bool {
        if case .ignoring = mode { return true }
        return false
    }

    /// Adds bytes from the connection (dropped while ``ignoreInput()`` is in force).
    public mutating func append(_ bytes: inout ByteBuffer) {
        if case .ignoring = mode { return }
        if buffer.readableBytes == 0 {
            buffer.clear()
        } else if buffer.readerIndex > 16 * 1024 {
            buffer.discardReadBytes()
        }
        buffer.writeBuffer(&bytes)
    }

    /// Drops everything buffered and all input until ``resumeCommands()``: for STARTTLS,
    /// so nothing sent before the handshake is taken as a command after it
    /// (RFC 3207 §4.2, CVE-2011-0411).
    public mutating func ignoreInput() {
        buffer.clear()
        mode = .ignoring
    }

    /// Reads command lines again, starting from nothing.
    public mutating func resumeCommands() {
        buffer.clear()
        mode = .command
    }

    /// The next bytes are DATA content (after the 354).
    public mutating func expectData(_ limits: ContentLimits, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        mode = .data(DataReceiver(maxSize: limits.maxSize, bareNewline: limits.bareNewline, allocator: allocator))
    }

    /// The next `size` bytes are a BDAT chunk; `discard` when it is refused anyway
    /// (RFC 3030 §2: it is read all the same, to stay in step). `first` starts a new message.
    public mutating func expectChunk(size: Int, last: Bool, discard: Bool, first: Bool, limits: ContentLimits, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        if first || chunks == nil, !discard {
            chunks = ContentNormalizer(maxSize: limits.maxSize, bareNewline: limits.bareNewline, allocator: allocator)
        }
        mode = .chunk(remaining: size, size: size, last: last, discard: discard)
    }

    /// The next complete frame, or `nil` when more bytes are needed. `lineLimit` is
    /// the longest command line allowed now (an AUTH exchange allows longer ones).
    public mutating func next(lineLimit: Int) -> Frame? {
        while true {
            switch mode {
            case .ignoring:
                return nil
            case .discardingLine:
                guard let lf = buffer.readableBytesView.firstIndex(of: 10) else {
                    buffer.clear()
                    return nil
                }
                buffer.moveReaderIndex(to: lf + 1)
                mode = .command
            case .command:
                let view = buffer.readableBytesView
                guard let lf = view.prefix(lineLimit).firstIndex(of: 10) else {
                    guard view.count >= lineLimit else { return nil }
                    // Too long: skip to its end, keeping what follows it.
                    if let end = view.dropFirst(lineLimit).firstIndex(of: 10) {
                        buffer.moveReaderIndex(to: end + 1)
                    } else {
                        buffer.clear()
                        mode = .discardingLine
                    }
                    return .lineTooLong
                }
                var end = lf
                if end > view.startIndex, view[end - 1] == 13 { end -= 1 }
                let line = Array(view[view.startIndex..<end])
                buffer.moveReaderIndex(to: lf + 1)
                return .line(line)
            case .data(var receiver):
                // Drop the mode's reference first, so the receiver's buffer is unique
                // and grows in place instead of being copied on every read.
                mode = .command
                let done = receiver.consume(&buffer)
                guard done else {
                    mode = .data(receiver)
                    buffer.discardReadBytes()
                    return nil
                }
                mode = .command
                return .data(ReceivedContent(content: receiver.content, size: receiver.size, outcome: receiver.outcome, eightBit: receiver.eightBit))
            case .chunk(let remaining, let size, let last, let discard):
                let take = min(remaining, buffer.readableBytes)
                if take > 0 {
                    let slice = buffer.readSlice(length: take)!
                    if !discard { chunks?.append(slice) }
                }
                guard remaining == take else {
                    mode = .chunk(remaining: remaining - take, size: size, last: last, discard: discard)
                    buffer.discardReadBytes()
                    return nil
                }
                mode = .command
                guard !discard, var normalizer = chunks else {
                    return .chunk(size: size, last: last, content: nil)
                }
                if last {
                    chunks = nil
                    normalizer.finish()
                }
                let content = ReceivedContent(content: last ? normalizer.content : ByteBuffer(), size: normalizer.size, outcome: normalizer.outcome, eightBit: normalizer.eightBit)
                return .chunk(size: size, last: last, content: content)
            }
        }
    }
}
