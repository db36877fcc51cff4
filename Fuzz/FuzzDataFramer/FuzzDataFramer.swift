import FuzzSupport
import NIOCore
import SMTPCore

// DATA framing (SMTPFramer + DataReceiver) and the client's DATA encoder.
//
// Input: one flag byte (bit 0: bare newlines rejected rather than normalised; bit 1: a
// small size limit; bits 4-7: the size of the reads the stream is cut into), then the
// bytes a client sends after `354`. Oracles:
// - the end of DATA is exactly where an independent model puts it: the first
//   `<CRLF>.<CRLF>` of `<CRLF>` + stream (so one DATA never yields two messages), and the
//   bytes after it come out as the next command line;
// - the content never contains a bare CR, a bare LF or a NUL; its size is counted;
//   `eightBit` is exactly "an octet >= 0x80 was in the message";
// - the result does not depend on how the stream is cut into reads;
// - stuffing then unstuffing is the identity: DataEncoder's output of the content has
//   only canonical lines of at most 1000 octets, ends once, at its end, and reads back
//   (with a fresh receiver) as the same content when no line needed folding;
// - the encoder applied to the raw stream (as BDAT content) also gives a stream that
//   ends exactly once and reads back as the canonical form of the input.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDataFramer(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    guard let flags = input.first else { return 0 }
    let stream = Array(input.dropFirst())
    let limits = ContentLimits(maxSize: flags & 2 != 0 ? 64 : 1 << 20, bareNewline: flags & 1 != 0 ? .reject : .normalize)
    let whole = frame(stream, limits: limits, readSize: stream.count + 1)
    let cut = frame(stream, limits: limits, readSize: readSizes[Int(flags >> 4)])
    check(whole.same(as: cut), "cutting the stream into reads changed the result: \(whole) vs \(cut)")

    let end = modelEnd(stream)
    check(whole.content != nil ? whole.consumed == end : end == nil, "end of DATA at \(String(describing: whole.consumed)), model says \(String(describing: end))")
    guard let content = whole.content, let end else { return 0 }
    if let line = whole.nextLine {
        var expected = Array(stream[end...].prefix { $0 != 10 })
        if expected.last == 13 { expected.removeLast() }
        check(line == expected, "the bytes after the end are not the next command")
    }
    let bytes = Array(content.content.readableBytesView)
    check(isCanonical(bytes), "content has a bare CR, a bare LF or a NUL")
    check(content.eightBit == stream[..<end].contains { $0 >= 0x80 }, "eightBit wrong")
    if content.outcome != .tooLarge {
        check(content.size == bytes.count && content.size <= limits.maxSize, "size \(content.size) for \(bytes.count) bytes")
    } else {
        check(content.size > limits.maxSize, "tooLarge at size \(content.size)")
    }
    if content.outcome == .ok {
        check(!stream[..<end].contains(0), "a NUL was accepted")
        roundTrip(bytes, expectSame: lines(of: bytes).allSatisfy { $0 <= SMTPLimits.maxOutboundLine })
    }
    // The raw stream as content that never went through a receiver (BDAT, a stored row).
    let canonical = canonicalForm(stream)
    roundTrip(stream, expectSame: false)
    let encoded = Array(DataEncoder.encode(ByteBuffer(bytes: stream)).readableBytesView)
    if let decoded = receive(encoded), !stream.contains(0), lines(of: canonical).allSatisfy({ $0 <= SMTPLimits.maxOutboundLine }) {
        check(decoded == canonical, "encoder output read back differs from the canonical input")
    }
    return 0
}

/// Read sizes to cut the stream into: single octets to whole lines.
let readSizes = [1, 2, 3, 4, 5, 7, 11, 16, 24, 32, 48, 64, 100, 256, 512, 1000]

struct Framed: CustomStringConvertible {
    var content: ReceivedContent?
    var consumed: Int?
    var nextLine: [UInt8]?

    var description: String {
        let c = content.map { "size \($0.size), \($0.outcome), eightBit \($0.eightBit), \($0.content.readableBytes) bytes" } ?? "no end"
        return "\(c), consumed \(consumed.map(String.init) ?? "-"), next line \(nextLine.map { String(decoding: $0, as: UTF8.self).debugDescription } ?? "-")"
    }

    func same(as other: Framed) -> Bool {
        guard let a = content, let b = other.content else { return content == nil && other.content == nil }
        // What is kept of a message over the limit (refused with 552) is unspecified.
        return (a.outcome == .tooLarge || a.content == b.content) && a.size == b.size && a.outcome == b.outcome && a.eightBit == b.eightBit
            && consumed == other.consumed && nextLine == other.nextLine
    }
}

/// Feeds the stream to a framer expecting DATA, `readSize` bytes a read.
func frame(_ stream: [UInt8], limits: ContentLimits, readSize: Int) -> Framed {
    var framer = SMTPFramer()
    framer.expectData(limits)
    var result = Framed()
    var offset = 0
    repeat {
        let n = min(readSize, stream.count - offset)
        var read = ByteBuffer(bytes: stream[offset..<(offset + n)])
        offset += n
        framer.append(&read)
        while let frame = framer.next(lineLimit: 512) {
            switch frame {
            case .data(let content):
                check(result.content == nil, "one DATA gave two messages")
                result.content = content
                result.consumed = offset - framer.bufferedBytes
            case .line(let line):
                check(result.content != nil, "a command line before the end of DATA")
                if result.nextLine == nil { result.nextLine = line }
            case .lineTooLong:
                check(result.content != nil, "a command line before the end of DATA")
                if result.nextLine == nil { result.nextLine = [] }
            case .chunk:
                check(false, "a BDAT chunk in DATA")
            }
        }
    } while offset < stream.count
    if result.nextLine == [] { result.nextLine = nil }
    return result
}

/// Where DATA ends (the offset after the terminator), by the simplest model there is.
func modelEnd(_ stream: [UInt8]) -> Int? {
    let s: [UInt8] = [13, 10] + stream
    let terminator: [UInt8] = [13, 10, 46, 13, 10]
    guard s.count >= 5 else { return nil }
    for i in 0...(s.count - 5) where s[i] == 13 && Array(s[i..<(i + 5)]) == terminator {
        return i + 5 - 2
    }
    return nil
}

/// Encodes `content`, reads it back, and checks the wire form.
func roundTrip(_ content: [UInt8], expectSame: Bool) {
    let encoded = Array(DataEncoder.encode(ByteBuffer(bytes: content)).readableBytesView)
    check(isCanonical(encoded), "encoder wrote a bare CR, a bare LF or a NUL")
    check(lines(of: encoded).allSatisfy { $0 <= SMTPLimits.maxOutboundLine }, "encoder wrote a line over 998 octets")
    check(modelEnd(encoded) == encoded.count, "encoder output ends at \(String(describing: modelEnd(encoded))) of \(encoded.count)")
    guard let decoded = receive(encoded) else { return check(false, "encoder output was not read back as one clean message") }
    if expectSame { check(decoded == content, "unstuff(stuff(x)) != x") }
}

/// What a fresh receiver makes of an encoded stream, if it is one clean message.
func receive(_ encoded: [UInt8]) -> [UInt8]? {
    var receiver = DataReceiver(maxSize: Int.max, bareNewline: .reject)
    var buffer = ByteBuffer(bytes: encoded)
    guard receiver.consume(&buffer), buffer.readableBytes == 0, receiver.outcome == .ok else { return nil }
    return Array(receiver.content.readableBytesView)
}

/// Every CRLF, CR or LF as CRLF, NULs dropped, a final CRLF added if missing.
func canonicalForm(_ bytes: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    var i = 0
    while i < bytes.count {
        let b = bytes[i]
        if b == 13 || b == 10 {
            out += [13, 10]
            i += (b == 13 && i + 1 < bytes.count && bytes[i + 1] == 10) ? 2 : 1
            continue
        }
        if b != 0 { out.append(b) }
        i += 1
    }
    if !out.isEmpty, out.suffix(2) != [13, 10] { out += [13, 10] }
    return out
}

/// The lengths of the CRLF-separated lines.
func lines(of bytes: [UInt8]) -> [Int] {
    var lengths: [Int] = []
    var current = 0
    var i = 0
    while i < bytes.count {
        if bytes[i] == 13, i + 1 < bytes.count, bytes[i + 1] == 10 {
            lengths.append(current)
            current = 0
            i += 2
            continue
        }
        current += 1
        i += 1
    }
    lengths.append(current)
    return lengths
}
