import NIOCore
import SMTPCore
import Testing

/// The framer: complete frames only, whatever the read boundaries; bytes of later
/// frames kept; bounded lines; DATA and BDAT content as the session asked for it.
@Suite struct SMTPFramerTests {
    /// Describes a frame for comparison.
    func describe(_ frame: SMTPFramer.Frame) -> String {
        switch frame {
        case .line(let bytes): return "line:" + String(decoding: bytes, as: UTF8.self)
        case .lineTooLong: return "too-long"
        case .data(let c): return "data:\(c.outcome):\(c.size):\(c.eightBit):" + String(buffer: c.content)
        case .chunk(let size, let last, let c): return "chunk:\(size):\(last):" + (c.map { "\($0.outcome):\($0.size):" + String(buffer: $0.content) } ?? "nil")
        }
    }

    /// Feeds `input` in pieces of `step` bytes; after each frame, `react` may tell the
    /// framer what comes next (as the session would).
    func frames(_ input: String, step: Int, react: (inout SMTPFramer, SMTPFramer.Frame) -> Void = { _, _ in }) -> [String] {
        var framer = SMTPFramer()
        var out: [String] = []
        let bytes = Array(input.utf8)
        var i = 0
        while i < bytes.count {
            var piece = ByteBuffer(bytes: bytes[i..<min(i + step, bytes.count)])
            framer.append(&piece)
            i += step
            while let frame = framer.next(lineLimit: 64) {
                out.append(describe(frame))
                react(&framer, frame)
            }
        }
        return out
    }

    @Test func linesWhateverTheReadBoundaries() {
        let input = "EHLO a\r\nMAIL FROM:<x@y>\nNOOP\r\n"
        let whole = frames(input, step: input.utf8.count)
        #expect(whole == ["line:EHLO a", "line:MAIL FROM:<x@y>", "line:NOOP"])
        for step in 1...7 { #expect(frames(input, step: step) == whole) }
    }

    @Test func anOverlongLineIsReportedOnceAndSkipped() {
        let input = String(repeating: "x", count: 200) + "\r\nNOOP\r\n"
        for step in [1, 13, 300] {
            #expect(frames(input, step: step) == ["too-long", "line:NOOP"])
        }
    }

    @Test func dataThenPipelinedCommands() {
        let input = "DATA\r\nSubject: é\r\n\r\n..dot\r\n.\r\nQUIT\r\n"
        let react: (inout SMTPFramer, SMTPFramer.Frame) -> Void = { framer, frame in
            if case .line(let l) = frame, l == Array("DATA".utf8) { framer.expectData(ContentLimits(maxSize: 1000, bareNewline: .normalize)) }
        }
        let whole = frames(input, step: 1000, react: react)
        #expect(whole == ["line:DATA", "data:ok:21:true:Subject: é\r\n\r\n.dot\r\n", "line:QUIT"])
        for step in 1...5 { #expect(frames(input, step: step, react: react) == whole) }
    }

    /// RELIABILITY A5: `CR CR LF` in ordinary content. The extra CR is never dropped:
    /// `normalize` makes it a line break of its own (a new, empty line), `reject`
    /// refuses the message.
    @Test func crCrLfInContentIsKeptAsALineBreakOrRefused() {
        for (mode, expected) in [(BareNewlinePolicy.normalize, "data:ok:8:false:a\r\n\r\nb\r\n"), (.reject, "data:bareNewline:")] {
            let react: (inout SMTPFramer, SMTPFramer.Frame) -> Void = { framer, frame in
                if case .line(let l) = frame, l == Array("DATA".utf8) { framer.expectData(ContentLimits(maxSize: 1000, bareNewline: mode)) }
            }
            let got = frames("DATA\r\na\r\r\nb\r\n.\r\nQUIT\r\n", step: 1000, react: react)
            #expect(got.count == 3 && got[1].hasPrefix(expected) && got[2] == "line:QUIT", "\(mode): \(got)")
        }
    }

    /// RELIABILITY C1: KumoMTA's long-line vector up to 10⁷ octets. Everything up to the
    /// limit is a command; a longer line is reported once and skipped, and the framer
    /// never holds more than the limit while it streams in.
    @Test func commandLinesUpToTenMillionOctetsStayBounded() {
        let limit = 2048
        for n in [128, 512, 990, 998, 1001, 1024, 2046, 2047, 4192, 1_000_000, 10_000_000] {
            var framer = SMTPFramer()
            var frames: [String] = []
            var piece = ByteBuffer(string: "NOOP ")
            framer.append(&piece)
            let block = ByteBuffer(repeating: UInt8(ascii: "a"), count: 65_536)
            var sent = 5
            var peak = 0
            while sent < 5 + n {
                var part = block.getSlice(at: 0, length: min(65_536, 5 + n - sent))!
                sent += part.readableBytes
                framer.append(&part)
                while let frame = framer.next(lineLimit: limit) { frames.append(describe(frame).prefix(12).description) }
                peak = max(peak, framer.bufferedBytes)
            }
            var end = ByteBuffer(string: "\r\nNOOP\r\n")
            framer.append(&end)
            while let frame = framer.next(lineLimit: limit) { frames.append(describe(frame).prefix(12).description) }
            let fits = 5 + n + 2 <= limit
            #expect(frames == [fits ? "line:NOOP aa" : "too-long", "line:NOOP"], "n = \(n): \(frames)")
            #expect(peak <= limit + 65_536, "n = \(n): \(peak) octets held")
        }
    }

    @Test func chunksAcrossReads() {
        let input = "BDAT 4\r\nab\r\nBDAT 3 LAST\r\ncd\nQUIT\r\n"
        let react: (inout SMTPFramer, SMTPFramer.Frame) -> Void = { framer, frame in
            guard case .line(let l) = frame else { return }
            let text = String(decoding: l, as: UTF8.self)
            if text == "BDAT 4" { framer.expectChunk(size: 4, last: false, discard: false, first: true, limits: ContentLimits(maxSize: 100, bareNewline: .normalize)) }
            if text == "BDAT 3 LAST" { framer.expectChunk(size: 3, last: true, discard: false, first: false, limits: ContentLimits(maxSize: 100, bareNewline: .normalize)) }
        }
        let whole = frames(input, step: 1000, react: react)
        #expect(whole == ["line:BDAT 4", "chunk:4:false:ok:4:", "line:BDAT 3 LAST", "chunk:3:true:ok:8:ab\r\ncd\r\n", "line:QUIT"])
        for step in 1...4 { #expect(frames(input, step: step, react: react) == whole) }
    }

    @Test func aDiscardedChunkIsReadAndDropped() {
        let react: (inout SMTPFramer, SMTPFramer.Frame) -> Void = { framer, frame in
            if case .line(let l) = frame, l == Array("BDAT 6".utf8) {
                framer.expectChunk(size: 6, last: false, discard: true, first: false, limits: ContentLimits(maxSize: 100, bareNewline: .normalize))
            }
        }
        #expect(frames("BDAT 6\r\nRSET\r\nNOOP\r\n", step: 3, react: react) == ["line:BDAT 6", "chunk:6:false:nil", "line:NOOP"])
    }

    /// RFC 3207 §4.2: bytes sent before the TLS handshake are never framed.
    @Test func ignoredInputIsDropped() {
        var framer = SMTPFramer()
        var bytes = ByteBuffer(string: "STARTTLS\r\nMAIL FROM:<x@y>\r\n")
        framer.append(&bytes)
        #expect(framer.next(lineLimit: 64).map(describe) == "line:STARTTLS")
        framer.ignoreInput()
        #expect(framer.bufferedBytes == 0 && framer.ignoresInput)
        var more = ByteBuffer(string: "RCPT TO:<z@y>\r\n")
        framer.append(&more)
        #expect(framer.next(lineLimit: 64) == nil)
        framer.resumeCommands()
        var after = ByteBuffer(string: "EHLO a\r\n")
        framer.append(&after)
        #expect(framer.next(lineLimit: 64).map(describe) == "line:EHLO a")
    }
}
