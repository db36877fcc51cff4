import NIOCore
import Testing

@testable import SMTPCore

/// DATA framing against RELIABILITY.md §A: only CRLF.CRLF ends DATA; every fake
/// terminator is refused and never becomes a second message.
@Suite struct DataFramingTests {
    /// Feeds `input` to a receiver in chunks of `chunk` bytes; returns the receiver and the leftover.
    func receive(_ input: [UInt8], chunk: Int = .max, policy: BareNewlinePolicy = .normalize, max: Int = 1 << 20) -> (DataReceiver, [UInt8], Bool) {
        var receiver = DataReceiver(maxSize: max, bareNewline: policy)
        var rest: [UInt8] = []
        var done = false
        var offset = 0
        while offset < input.count {
            let end = Swift.min(input.count, offset + Swift.max(1, Swift.min(chunk, input.count)))
            var buffer = ByteBuffer(bytes: input[offset..<end])
            offset = end
            if receiver.consume(&buffer) {
                done = true
                rest = Array(buffer.readableBytesView) + Array(input[offset...])
                break
            }
        }
        return (receiver, rest, done)
    }

    @Test func plainMessageAndLeftover() {
        let (r, rest, done) = receive(Array("Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n".utf8))
        #expect(done)
        #expect(String(buffer: r.content) == "Subject: x\r\n\r\nhello\r\n")
        #expect(rest == Array("QUIT\r\n".utf8))
        #expect(r.outcome == .ok)
    }

    @Test func emptyMessage() {
        let (r, _, done) = receive(Array(".\r\n".utf8))
        #expect(done && r.content.readableBytes == 0)
    }

    @Test func dotUnstuffing() {
        let (r, _, _) = receive(Array("..From:\r\n..\r\n...x\r\n.single\r\n.\r\n".utf8))
        #expect(String(buffer: r.content) == ".From:\r\n.\r\n..x\r\nsingle\r\n")
    }

    static let fakeTerminators: [String] = [
        "\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r.\n", "\n.\r", "\r.\r\n", "\r\n.\r", "\r\n.\r\r\n", "\r\r\n.\r\r\n",
        "\r\n\u{0}.\r\n", "\r\n.\u{0}\r\n",
    ]

    @Test(arguments: fakeTerminators, [1, 3, 1000])
    func fakeTerminatorNeverEndsData(_ fake: String, chunk: Int) {
        let smuggled = "Subject: a\r\n\r\nbody\(fake)MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n"
        let (r, rest, done) = receive(Array(smuggled.utf8), chunk: chunk)
        #expect(done)
        // The real end is the one after "second": what follows is QUIT, not the smuggled MAIL.
        #expect(rest == Array("QUIT\r\n".utf8))
        #expect(r.outcome != .ok, "fake terminator \(fake.debugDescription) was not refused")
        // Stored content is canonical: CR and LF only as pairs, and no NUL.
        let bytes = Array(r.content.readableBytesView)
        #expect(isCanonical(bytes))
        #expect(!bytes.contains(0))
    }

    @Test func bareLineEndingsNormalised() {
        let (r, _, done) = receive(Array("a\nb\rc\r\n.\r\n".utf8))
        #expect(done && r.outcome == .ok)
        #expect(String(buffer: r.content) == "a\r\nb\r\nc\r\n")
    }

    @Test func bareLineEndingsRejectedOnRequest() {
        let (r, _, done) = receive(Array("a\nb\r\n.\r\n".utf8), policy: .reject)
        #expect(done && r.outcome == .bareNewline)
        #expect(r.outcome.reply?.code == 550 && r.outcome.reply?.enhancedCode == "5.5.2")
    }

    @Test func sizeLimitBoundsMemory() {
        let body = String(repeating: "x", count: 5000) + "\r\n.\r\n"
        let (r, _, done) = receive(Array(body.utf8), chunk: 100, max: 1000)
        #expect(done && r.outcome == .tooLarge)
        #expect(r.content.readableBytes <= 1000)
        #expect(r.outcome.reply?.code == 552)
    }

    @Test func encoderStuffsFoldsAndTerminates() {
        let long = String(repeating: "y", count: 2500)
        let content = ByteBuffer(string: ".From:\r\n..x\r\n.\r\n\(long)\r\nend")
        let wire = String(buffer: DataEncoder.encode(content))
        #expect(wire.hasPrefix("..From:\r\n...x\r\n..\r\n"))
        #expect(wire.hasSuffix("end\r\n.\r\n"))
        for line in wire.split(separator: "\r\n") { #expect(line.utf8.count <= 998) }
        #expect(isCanonical(Array(wire.utf8)))
    }

    @Test func encodeThenReceiveIsIdentity() {
        let samples = [".From:\r\n", "..\r\n", ".\r\n", "a\r\n.b\r\n..c\r\n", "", "x\r\n\r\n.\r\n.."]
        for s in samples {
            let content = ByteBuffer(string: s)
            let wire = DataEncoder.encode(content)
            let (r, _, done) = receive(Array(wire.readableBytesView))
            #expect(done)
            let expected = s.isEmpty || s.hasSuffix("\r\n") ? s : s + "\r\n"
            #expect(String(buffer: r.content) == expected, "\(s.debugDescription)")
        }
    }

    @Test func bdatNormalizer() {
        var n = ContentNormalizer(maxSize: 1000, bareNewline: .normalize)
        n.append(ByteBuffer(string: "a\r"))
        n.append(ByteBuffer(string: "\nb\nc"))
        n.finish()
        #expect(String(buffer: n.content) == "a\r\nb\r\nc\r\n")
        var z = ContentNormalizer(maxSize: 1000, bareNewline: .normalize)
        z.append(ByteBuffer(bytes: [65, 0, 66]))
        #expect(z.outcome == .nul)
    }

    func isCanonical(_ bytes: [UInt8]) -> Bool {
        for (i, b) in bytes.enumerated() {
            if b == 13 && (i + 1 >= bytes.count || bytes[i + 1] != 10) { return false }
            if b == 10 && (i == 0 || bytes[i - 1] != 13) { return false }
        }
        return true
    }
}
