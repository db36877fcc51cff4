import NIOCore
import Testing

@testable import SMTPCore

/// The word-at-a-time encoder and framer give exactly what the byte-at-a-time
/// versions gave, on inputs made to hit every case (line breaks of every kind, NUL,
/// dots at line starts, runs across word boundaries, lines past 998 octets).
@Suite struct ByteScanTests {
    /// The encoder as it was, one byte at a time: the model.
    enum ReferenceEncoder {
        static func encode(_ content: ByteBuffer, into out: inout ByteBuffer) {
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
    }

    /// Deterministic pseudo-random bytes biased towards the interesting ones.
    static func input(seed: UInt64, count: Int) -> [UInt8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        let alphabet: [UInt8] = [13, 10, 0, UInt8(ascii: "."), 0xC3, 0xA9, UInt8(ascii: " ")]
        var out: [UInt8] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            let r = Int(state % 1000)
            out.append(r < 60 ? alphabet[r % alphabet.count] : UInt8(ascii: "a") + UInt8(r % 26))
        }
        return out
    }

    @Test func theEncoderMatchesTheByteAtATimeModel() {
        for seed in 1...300 {
            let bytes = Self.input(seed: UInt64(seed), count: seed < 250 ? seed * 7 : 5000)
            let content = ByteBuffer(bytes: bytes)
            var expected = ByteBuffer()
            ReferenceEncoder.encode(content, into: &expected)
            #expect(DataEncoder.encode(content) == expected, "seed \(seed)")
        }
        // Long lines, so folding meets the word scan.
        for length in [997, 998, 999, 1996, 1997, 5000] {
            let content = ByteBuffer(bytes: Array(repeating: UInt8(ascii: "x"), count: length) + [13, 10] + Array(repeating: UInt8(ascii: "."), count: length))
            var expected = ByteBuffer()
            ReferenceEncoder.encode(content, into: &expected)
            #expect(DataEncoder.encode(content) == expected, "length \(length)")
        }
    }

    @Test func aPrefixIsEncodedAsTheStartOfTheContent() {
        let header = "Received: from a\r\n\tby b; Mon, 1 Jan 2026 00:00:00 +0000\r\n"
        for seed in 1...50 {
            let bytes = Self.input(seed: UInt64(seed), count: 300)
            var whole = ByteBuffer(string: header)
            whole.writeBytes(bytes)
            #expect(DataEncoder.encode(ByteBuffer(bytes: bytes), prefix: header) == DataEncoder.encode(whole), "seed \(seed)")
        }
    }

    @Test func theScanFindsTheFirstBreakAndTheHighBits() {
        for seed in 1...200 {
            let bytes = Self.input(seed: UInt64(seed), count: 64)
            bytes.withUnsafeBytes { raw in
                for from in 0..<raw.count {
                    var high: UInt8 = 0
                    let found = ByteScan.firstLineBreakOrNUL(raw, from: from, high: &high)
                    let expected = raw[from...].firstIndex { $0 == 13 || $0 == 10 || $0 == 0 } ?? raw.count
                    #expect(found == expected)
                    #expect((high & 0x80 != 0) == raw[from..<expected].contains { $0 >= 0x80 })
                }
            }
        }
    }
}
