import FuzzSupport
import NIOCore
import SMTPClient
import SMTPCore

// The upstream client's reply parser (RFC 5321 §4.2, RFC 3463 enhanced codes) on
// whatever a hostile or broken server sends. Input: one byte giving the size of the
// reads, then the server's bytes. Oracles: no trap; the replies (and the point where
// the stream is refused) do not depend on how the bytes are cut into reads; every
// reply has a code of 200-599, at most 512 lines, and an enhanced code only of the
// reply's own class.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReplyParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    guard let readSize = input.first.map({ Int($0) + 1 }) else { return 0 }
    let stream = Array(input.dropFirst())
    let whole = parse(stream, readSize: stream.count + 1)
    let cut = parse(stream, readSize: readSize)
    check(whole == cut, "cutting the stream into reads changed the replies: \(whole) vs \(cut)")
    for reply in whole.replies {
        check((200..<600).contains(reply.code), "code \(reply.code)")
        check(!reply.lines.isEmpty && reply.lines.count <= 512, "\(reply.lines.count) lines")
        if let enhanced = reply.enhancedCode {
            check(enhanced.first == String(reply.code / 100).first, "enhanced code \(enhanced) on \(reply.code)")
        }
    }
    return 0
}

struct Parsed: Equatable, CustomStringConvertible {
    var replies: [SMTPReply] = []
    var failure: String?
    var description: String { "\(replies.count) replies, failure \(failure ?? "none")" }
}

func parse(_ stream: [UInt8], readSize: Int) -> Parsed {
    var parser = SMTPReplyParser()
    var result = Parsed()
    var offset = 0
    repeat {
        let n = min(readSize, stream.count - offset)
        parser.append(ByteBuffer(bytes: stream[offset..<(offset + n)]))
        offset += n
        do {
            while let reply = try parser.next() { result.replies.append(reply) }
        } catch {
            result.failure = error.reason
            return result
        }
    } while offset < stream.count
    return result
}
