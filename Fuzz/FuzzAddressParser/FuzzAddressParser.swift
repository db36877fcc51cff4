import FuzzSupport
import SMTPCore

// The path and mailbox parser (RFC 5321 §4.1.2, RFC 6531) and the ESMTP parameter
// parser. The first byte chooses whether UTF-8 is allowed; the rest is a path,
// possibly followed by parameters. Oracles: no trap; a parsed path consumed only
// bytes it was given; a parsed mailbox written back in wire form (`<local@domain>`,
// quoted where needed) parses to the same mailbox; MAIL/RCPT parameters that parse
// obey their grammar.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAddressParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    guard let flags = input.first else { return 0 }
    let text = input.dropFirst()
    let parser = AddressParser(allowUTF8: flags & 1 != 0)
    if let (parsed, consumed) = try? parser.parsePath(text) {
        check(consumed >= 2 && consumed <= text.count, "consumed \(consumed) of \(text.count)")
        if let mailbox = parsed.mailbox { roundTrip(mailbox, parser, hadRoute: parsed.hadSourceRoute) }
    }
    if let mailbox = try? parser.parseMailbox(String(decoding: text, as: UTF8.self)) {
        roundTrip(mailbox, parser, hadRoute: false)
    }
    let commands = SMTPCommandParser()
    if case .mail(let path, let params)? = try? commands.parse(Array("MAIL FROM:".utf8)[...] + text) {
        check(params.size.map { $0 >= 0 } ?? true, "negative SIZE")
        check((params.envelopeID?.utf8.count ?? 0) <= 100, "ENVID over 100 octets")
        check(params.ret.map { ["FULL", "HDRS"].contains($0) } ?? true, "RET \(params.ret ?? "")")
        if let m = path.mailbox, !params.smtpUTF8 { check(!m.needsSMTPUTF8, "8-bit sender \(m) without SMTPUTF8") }
    }
    if case .rcpt(let mailbox, let params, _)? = try? commands.parse(Array("RCPT TO:".utf8)[...] + text) {
        // `<""@example.com>` is a valid path (Quoted-string = DQUOTE *QcontentSMTP DQUOTE).
        check(!mailbox.domain.isEmpty && (!mailbox.localPart.isEmpty || mailbox.wasQuoted), "empty part in \(mailbox)")
        if let notify = params.notify {
            check(notify == ["NEVER"] || notify.allSatisfy { ["SUCCESS", "FAILURE", "DELAY"].contains($0) }, "NOTIFY \(notify)")
        }
    }
    return 0
}

/// `<` + the mailbox's wire form + `>` must parse to the same local part and domain.
func roundTrip(_ mailbox: Mailbox, _ parser: AddressParser, hadRoute: Bool) {
    let wire = Array("<\(mailbox)>".utf8)
    do {
        let (again, consumed) = try parser.parsePath(wire[...])
        check(consumed == wire.count, "\(mailbox) re-read \(consumed) of \(wire.count) bytes")
        check(again.mailbox?.localPart == mailbox.localPart && again.mailbox?.domain == mailbox.domain,
              "\(mailbox.localPart.debugDescription)@\(mailbox.domain) re-read as \(String(describing: again.mailbox))")
    } catch {
        // A source route exempts the original path from the length limit; its mailbox alone may not be.
        if hadRoute, error.reason == "address too long" { return }
        check(false, "\(mailbox.localPart.debugDescription)@\(mailbox.domain) written as \(String(decoding: wire, as: UTF8.self).debugDescription) does not re-parse: \(error.reason)")
    }
}
