import FuzzSupport
import NIOCore
import SMTPCore

// BDAT framing (RFC 3030): SMTPFramer.expectChunk + ContentNormalizer.
//
// Input: one flag byte (bit 0: bare newlines rejected; bit 1: a small size limit;
// bits 4-7: the size of the reads), then chunks, each a header byte (bits 0-5: chunk
// size; bit 6: LAST; bit 7: discarded) followed by its octets. Oracles:
// - every chunk is exactly its size: one `.chunk` frame per chunk, the octets after
//   it stay buffered for the next;
// - a LAST chunk carries the whole message, equal to an independent model of the
//   canonical form (CRLF, CR or LF each as CRLF, even split across chunks; NUL
//   dropped and the message refused; a final CRLF added), with the outcome the
//   model predicts;
// - the result does not depend on how the stream is cut into reads.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBDATFramer(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    guard let flags = input.first else { return 0 }
    let limits = ContentLimits(maxSize: flags & 2 != 0 ? 64 : 1 << 20, bareNewline: flags & 1 != 0 ? .reject : .normalize)
    var chunks: [Chunk] = []
    var i = 1
    while i < input.count {
        let header = input[i]
        let n = min(Int(header & 0x3f), input.count - i - 1)
        chunks.append(Chunk(bytes: Array(input[(i + 1)..<(i + 1 + n)]), last: header & 0x40 != 0, discard: header & 0x80 != 0))
        i += 1 + n
    }
    let whole = run(chunks, limits: limits, readSize: Int.max)
    let cut = run(chunks, limits: limits, readSize: Int(flags >> 4) + 1)
    check(whole.count == cut.count && zip(whole, cut).allSatisfy { same($0, $1) }, "cutting the stream into reads changed the result")

    // The model, message by message.
    var pending: [UInt8] = []
    var discarded = false
    var first = true
    for (chunk, content) in zip(chunks, whole) {
        if first { discarded = chunk.discard }
        first = false
        if chunk.discard { check(content == nil, "a discarded chunk carried content") }
        if !chunk.discard { pending += chunk.bytes }
        guard chunk.last else { continue }
        defer { pending = []; first = true }
        guard !discarded, !chunk.discard, let content else { continue }
        let model = Model(pending, limits: limits)
        let bytes = Array(content.content.readableBytesView)
        if model.outcome == .tooLarge {
            // Past the limit nothing more is kept, the final CRLF included: only "too large" matters.
            check(content.outcome == .tooLarge && content.size > limits.maxSize, "\(content.outcome) at size \(content.size), model: too large")
        } else {
            check(content.size == model.size, "size \(content.size), model \(model.size)")
            check(content.outcome == model.outcome, "outcome \(content.outcome), model \(model.outcome)")
            check(bytes == model.content, "content differs from the model")
        }
        check(content.eightBit == pending.contains { $0 >= 0x80 }, "eightBit wrong")
    }
    return 0
}

struct Chunk {
    var bytes: [UInt8]
    var last: Bool
    var discard: Bool
}

/// Frames the chunks (their octets back to back, as after each `BDAT` line), `readSize` a read.
func run(_ chunks: [Chunk], limits: ContentLimits, readSize: Int) -> [ReceivedContent?] {
    var framer = SMTPFramer()
    var results: [ReceivedContent?] = []
    var first = true
    for chunk in chunks {
        framer.expectChunk(size: chunk.bytes.count, last: chunk.last, discard: chunk.discard, first: first, limits: limits)
        first = chunk.last
        var offset = 0
        var got: SMTPFramer.Frame?
        repeat {
            let n = min(readSize, chunk.bytes.count - offset)
            var read = ByteBuffer(bytes: chunk.bytes[offset..<(offset + n)])
            offset += n
            framer.append(&read)
            if let frame = framer.next(lineLimit: 512) {
                check(got == nil && offset == chunk.bytes.count, "a chunk ended early")
                got = frame
            }
        } while offset < chunk.bytes.count
        guard case .chunk(let size, let last, let content)? = got else { check(false, "no frame for a chunk"); return results }
        check(size == chunk.bytes.count && last == chunk.last && framer.bufferedBytes == 0, "chunk frame \(size) \(last)")
        results.append(content)
    }
    return results
}

func same(_ a: ReceivedContent?, _ b: ReceivedContent?) -> Bool {
    guard let a, let b else { return a == nil && b == nil }
    // What is kept of a message over the limit (refused with 552) is unspecified.
    return (a.outcome == .tooLarge || a.content == b.content) && a.size == b.size && a.outcome == b.outcome && a.eightBit == b.eightBit
}

/// The canonical form of a whole BDAT message, written for clarity, not speed.
struct Model {
    var content: [UInt8] = []
    var size = 0
    var outcome = DataReceiver.Outcome.ok

    init(_ bytes: [UInt8], limits: ContentLimits) {
        var stray = false
        var nul = false
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == 13 || b == 10 {
                content += [13, 10]
                if b == 13, i + 1 < bytes.count, bytes[i + 1] == 10 { i += 2; continue }
                stray = true
            } else if b == 0 {
                // The first problem wins: a stray newline before the NUL names the refusal.
                if !(stray && limits.bareNewline == .reject) { nul = true }
            } else {
                content.append(b)
            }
            i += 1
        }
        if !content.isEmpty, content.suffix(2) != [13, 10] { content += [13, 10] }
        size = content.count
        if size > limits.maxSize {
            outcome = .tooLarge
        } else if nul {
            outcome = .nul
        } else if stray, limits.bareNewline == .reject {
            outcome = .bareNewline
        }
    }
}
