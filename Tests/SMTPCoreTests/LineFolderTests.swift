import NIOCore
import Testing

@testable import SMTPCore

/// Long lines are folded when a message is received (before the stages see it, so a
/// signature covers what is sent), exactly as the encoder folds at delivery.
@Suite struct LineFolderTests {
    /// Canonical content (CRLF lines only) with lines of many lengths around the limit.
    static func canonical(seed: UInt64, lines: Int) -> [UInt8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        var out: [UInt8] = []
        for _ in 0..<lines {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            let length = [0, 1, 80, 997, 998, 999, 1996, 1997, 2500, 5000][Int(state % 10)]
            let first: UInt8 = state & 0x10 == 0 ? UInt8(ascii: ".") : UInt8(ascii: "a")
            if length > 0 { out.append(first) }
            for k in 1..<max(1, length) { out.append(k % 7 == 0 ? 0xC3 : UInt8(ascii: "a") + UInt8(k % 26)) }
            out += [13, 10]
        }
        return out
    }

    @Test func foldsAsTheEncoderDoesAtDelivery() {
        for seed in 1...200 {
            let content = ByteBuffer(bytes: Self.canonical(seed: UInt64(seed), lines: 1 + seed % 9))
            let folded = LineFolder.fold(content) ?? content
            // Sending the folded content gives the same wire bytes as sending the original.
            #expect(DataEncoder.encode(folded) == DataEncoder.encode(content), "seed \(seed)")
            // Nothing left to fold: the encoder's folding is a no-op afterwards.
            #expect(LineFolder.fold(folded) == nil, "seed \(seed)")
            // Every line fits, counting the dot that stuffing adds.
            var longest = 0
            for line in Array(folded.readableBytesView).split(separator: 13) {
                let body = line.first == 10 ? line.dropFirst() : line[...]
                longest = max(longest, body.count + (body.first == UInt8(ascii: ".") ? 1 : 0))
            }
            #expect(longest <= SMTPLimits.maxOutboundLine, "seed \(seed)")
        }
    }

    @Test func shortLinesAreLeftAloneWithoutACopy() {
        let line = String(repeating: "x", count: 998)
        #expect(LineFolder.fold(ByteBuffer(string: "Subject: a\r\n\r\n\(line)\r\n\(line)")) == nil)
        #expect(LineFolder.fold(ByteBuffer()) == nil)
    }

    @Test func aLongLineBecomesContinuationLinesStartingWithASpace() throws {
        let long = String(repeating: "A", count: 1500)
        let folded = try #require(LineFolder.fold(ByteBuffer(string: "Subject: x\r\n\r\n\(long)\r\nend\r\n")))
        #expect(String(buffer: folded) == "Subject: x\r\n\r\n" + String(repeating: "A", count: 998) + "\r\n " + String(repeating: "A", count: 502) + "\r\nend\r\n")
    }
}
