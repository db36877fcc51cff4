import NIOCore
import SMTPCore
import Testing

/// ``SMTPFramer`` on command lines: over-long lines are reported once and skipped
/// to their end, never into the next command.
@Suite struct FramerTests {
    func frames(_ writes: [String]) -> [String] {
        var framer = SMTPFramer()
        var out: [String] = []
        for write in writes {
            var bytes = ByteBuffer(string: write)
            framer.append(&bytes)
            while let frame = framer.next(lineLimit: SMTPLimits.maxCommandLine) {
                switch frame {
                case .line(let line): out.append(String(decoding: line, as: UTF8.self))
                case .lineTooLong: out.append("<too long>")
                default: out.append("<content>")
                }
            }
        }
        return out
    }

    @Test func longLineThenCommandInOneWrite() {
        let long = "NOOP " + String(repeating: "x", count: 3000) + "\r\n"
        #expect(frames([long + "NOOP\r\n"]) == ["<too long>", "NOOP"])
    }

    /// A line of exactly the limit with its CRLF is kept; one octet more is not,
    /// and the next write is read as the next command.
    @Test func limitIncludesTheLineEnding() {
        let limit = SMTPLimits.maxCommandLine
        let fits = String(repeating: "x", count: limit - 2) + "\r\n"
        let over = String(repeating: "x", count: limit - 1) + "\r\n"
        #expect(frames([fits]).map(\.count) == [limit - 2])
        #expect(frames([over, "NOOP\r\n"]) == ["<too long>", "NOOP"])
    }

    @Test func longLineSpreadOverWrites() {
        let part = String(repeating: "x", count: 2500)
        #expect(frames([part, part, "\r\nQUIT\r\n"]) == ["<too long>", "QUIT"])
    }
}
