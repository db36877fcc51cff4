import FuzzSupport
import SMTPCore

// The command parser on one line (what the framer hands it: the bytes before LF, a
// trailing CR removed). Oracles: no trap; a refusal is a 5xx whose wire form is
// exactly its own lines (client bytes echoed in it cannot inject a reply); what
// parses obeys the grammar's limits.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCommandParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let line = fuzzInput(data, size)
    do {
        let command = try SMTPCommandParser().parse(line[...])
        _ = SMTPCommand.mustEndPipelineGroup(verb: command.verb)
        switch command {
        case .helo(let name), .ehlo(let name):
            check(!name.isEmpty && name.utf8.allSatisfy { $0 >= 32 && $0 < 127 }, "HELO/EHLO name \(name.debugDescription)")
        case .bdat(let size, _):
            check(size >= 0, "BDAT size \(size)")
        case .mail(let path, let params):
            check(params.size.map { $0 >= 0 } ?? true, "negative SIZE")
            check((params.envelopeID?.utf8.count ?? 0) <= 100, "ENVID over 100 octets")
            if let m = path.mailbox { checkParts(m) }
        case .rcpt(let m, _, _):
            checkParts(m)
        default:
            break
        }
    } catch {
        check((500..<600).contains(error.reply.code), "refusal \(error.reply)")
        check(crlfLines(Array(error.reply.wireString.utf8)) == error.reply.lines.count, "reply \(error.reply) written as \(error.reply.wireString.debugDescription)")
    }
    return 0
}

/// A domain, and a local part that is empty only when quoted (`<""@example.com>` is
/// valid: Quoted-string = DQUOTE *QcontentSMTP DQUOTE).
func checkParts(_ m: Mailbox) {
    check(!m.domain.isEmpty && (!m.localPart.isEmpty || m.wasQuoted), "empty part in \(m)")
}

/// Counts CRLF-terminated lines; -1 if a CR, LF or NUL stands anywhere else.
func crlfLines(_ bytes: [UInt8]) -> Int {
    var count = 0
    var i = 0
    while i < bytes.count {
        if bytes[i] == 13 {
            guard i + 1 < bytes.count, bytes[i + 1] == 10 else { return -1 }
            count += 1
            i += 2
            continue
        }
        if bytes[i] == 10 || bytes[i] == 0 { return -1 }
        i += 1
    }
    return count
}
