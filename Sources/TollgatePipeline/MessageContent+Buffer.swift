import NIOCore
import TollgatePolicy

/// A body that is a slice of the relay's own content buffer: stages read it in place.
public struct BufferBody: MessageBody {
    public let buffer: ByteBuffer

    public init(_ buffer: ByteBuffer) {
        self.buffer = buffer
    }

    public var count: Int { buffer.readableBytes }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeReadableBytes(body)
    }

    /// Whether both are the same bytes of the same storage (not a replaced body).
    func sameBytes(as other: BufferBody) -> Bool {
        guard count == other.count else { return false }
        let a = buffer.withUnsafeReadableBytes { $0.baseAddress }
        let b = other.buffer.withUnsafeReadableBytes { $0.baseAddress }
        return a == b
    }
}

extension MessageContent {
    /// The message in `content` (canonical CRLF lines): its header fields parsed, its
    /// body a slice of the same buffer (no copy).
    public init(buffer content: ByteBuffer) {
        let (fields, bodyStart) = content.withUnsafeReadableBytes { MessageContent.splitHeader($0) }
        if let bodyStart {
            self.init(fields: fields, body: BufferBody(content.getSlice(at: content.readerIndex + bodyStart, length: content.readableBytes - bodyStart)!))
        } else {
            self.init(fields: fields, body: BufferBody(ByteBuffer()), hasBodySeparator: false)
        }
    }

    /// How a changed message is stored, given the content it was parsed from:
    /// fields only inserted above the original ones (a signature, a trace field) go
    /// into the stored prefix beside `Received:` and the content is kept as it is —
    /// no copy of the body; any other change writes the message out once.
    public func stored(replacing original: ByteBuffer) -> (prefix: String, content: ByteBuffer, rewritten: Bool) {
        let before = MessageContent(buffer: original)
        if let body = body as? BufferBody, let kept = before.body as? BufferBody, body.sameBytes(as: kept),
           fields.count >= before.fields.count,
           Array(fields.suffix(before.fields.count)) == before.fields
        {
            var prefix: [UInt8] = []
            for field in fields.prefix(fields.count - before.fields.count) { prefix += field.raw + [13, 10] }
            if let text = String(validating: prefix, as: UTF8.self) {
                return (text, original, false)
            }
        }
        var out = ByteBufferAllocator().buffer(capacity: size)
        out.writeBytes(headerBlock)
        body.withUnsafeBytes { _ = out.writeBytes($0) }
        return ("", out, true)
    }
}
