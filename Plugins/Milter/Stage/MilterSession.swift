import Foundation
import NIOCore
import TollgatePolicy

/// The conversation with the milter for one SMTP session: one connection, opened at
/// the session's first phase and closed (QUIT) when the session ends — as Postfix
/// does, so every open SMTP session holds one connection to the milter.
actor MilterSession {
    let settings: MilterSettings
    let group: EventLoopGroup
    private var connection: MilterConnection?
    /// What the milter negotiated.
    private(set) var actions: Milter.Actions = []
    private(set) var steps: Milter.Steps = []

    private enum State { case fresh, open, finished, failed(MilterError) }
    private var state = State.fresh
    private var heloSent = false
    /// MAIL sent and neither EOM nor ABORT since: the next MAIL is preceded by ABORT.
    private var inTransaction = false
    /// The milter said accept, discard or reject for this message: nothing more until the next MAIL.
    private var skipTransaction = false
    /// Discard at connect or helo applies to every message of the session.
    private var sessionDiscard = false
    private var transactionDisposition = MessageDisposition.deliver

    init(settings: MilterSettings, group: EventLoopGroup) {
        self.settings = settings
        self.group = group
    }

    /// Decides one phase; a broken, silent or garbled milter throws (the stage's `on_error`),
    /// and keeps throwing for the rest of the session.
    func evaluate(_ context: PolicyContext) async throws -> PolicyDecision {
        switch state {
        case .failed(let error): throw error
        case .finished: return PolicyDecision(.continue, reason: "milter done with this session")
        case .fresh, .open: break
        }
        do {
            return try await step(context)
        } catch let error as MilterError {
            state = .failed(error)
            connection?.close()
            connection = nil
            throw error
        }
    }

    /// Ends the session: QUIT and close.
    func close() async {
        if let connection, case .open = state {
            try? await connection.send([MilterPacket(.quit)])
            connection.close()
        }
        connection = nil
        state = .finished
    }

    // MARK: - phases

    private func step(_ context: PolicyContext) async throws -> PolicyDecision {
        if case .fresh = state {
            if let answer = try await open(context), context.phase == .connect { return answer }
            guard case .open = state else { return PolicyDecision(.continue, reason: "milter done with this session") }
        }
        switch context.phase {
        case .connect:
            return PolicyDecision(.continue, reason: "milter: continue")
        case .helo:
            return try await helo(context) ?? PolicyDecision(.continue, reason: "milter: continue")
        case .mail:
            return try await mail(context)
        case .rcpt:
            guard let recipient = context.recipient else { return .continue }
            if !inTransaction { _ = try await mail(context) }
            if skipTransaction { return transactionDone() }
            return try await rcpt(recipient, context)
        case .data:
            return try await data(context)
        default:
            return .continue
        }
    }

    /// Connects, negotiates and sends CONNECT; `nil` when the milter said continue.
    private func open(_ context: PolicyContext) async throws -> PolicyDecision? {
        let connection = try await MilterConnection.open(settings.server, group: group, connectTimeout: settings.connectTimeout)
        self.connection = connection
        state = .open
        try await negotiate(connection)
        var answer: PolicyDecision?
        if !steps.contains(.noConnect) {
            let address = context.clientAddress
            let family: [UInt8]
            if address.contains(":") { family = Array("6".utf8) } else if address.contains(".") { family = Array("4".utf8) } else { family = Array("U".utf8) }
            var data = MilterPacket.nulTerminated([clientHostName(context)]) + family
            let port = UInt16(clamping: context.connection.clientPort ?? 0)
            if family != Array("U".utf8) { data += [UInt8(port >> 8), UInt8(port & 0xFF)] + MilterPacket.nulTerminated([address]) }
            if let reply = try await ask(.connect, data, macros: connectMacros(context), noReply: steps.contains(.noReplyConnect), what: "CONNECT") {
                answer = try sessionDecision(reply, phase: .connect)
            }
        }
        // A stage added to a running session (or a first call after connect) catches up on HELO.
        if context.phase != .connect, context.helo != nil, case .open = state, let a = try await helo(context) {
            return a
        }
        return answer
    }

    private func negotiate(_ connection: MilterConnection) async throws {
        let offer = MilterPacket.bytes(Milter.version) + MilterPacket.bytes(Milter.Actions.offered.rawValue) + MilterPacket.bytes(Milter.Steps.offered.rawValue)
        try await connection.send([MilterPacket(.optionNegotiation, offer)])
        let reply = try await connection.receive(timeout: settings.timeout, waitingFor: "OPTNEG")
        guard reply.code == Milter.Reply.optionNegotiation.rawValue, let version = reply.uint32(at: 0),
              let actionBits = reply.uint32(at: 4), let stepBits = reply.uint32(at: 8)
        else {
            throw MilterError.garbage("expected an option negotiation reply, got \(reply.character) with \(reply.data.count) octets")
        }
        guard version >= 2, version <= Milter.version else {
            throw MilterError.garbage("milter protocol version \(version) (this client speaks 2 to 6)")
        }
        let wanted = Milter.Actions(rawValue: actionBits)
        guard Milter.Actions.offered.isSuperset(of: wanted) else {
            throw MilterError.notNegotiated(String(format: "actions 0x%x beyond those offered (0x%x)", actionBits, Milter.Actions.offered.rawValue))
        }
        let asked = Milter.Steps(rawValue: stepBits)
        guard Milter.Steps.offered.isSuperset(of: asked) else {
            throw MilterError.garbage(String(format: "protocol flags 0x%x beyond those offered (0x%x)", stepBits, Milter.Steps.offered.rawValue))
        }
        actions = wanted
        steps = asked
    }

    private func helo(_ context: PolicyContext) async throws -> PolicyDecision? {
        guard let name = context.helo, !heloSent else { return nil }
        heloSent = true
        guard !steps.contains(.noHelo) else { return nil }
        guard let reply = try await ask(.helo, MilterPacket.nulTerminated([name]), macros: heloMacros(context), noReply: steps.contains(.noReplyHelo), what: "HELO") else { return nil }
        return try sessionDecision(reply, phase: .helo)
    }

    private func mail(_ context: PolicyContext) async throws -> PolicyDecision {
        if inTransaction { try await connection!.send([MilterPacket(.abort)]) }
        inTransaction = true
        skipTransaction = false
        transactionDisposition = sessionDiscard ? .discard(reason: "the milter discarded the session's mail") : .deliver
        guard !steps.contains(.noMail) else { return transactionDone() }
        let sender = context.sender ?? ""
        let reply = try await ask(.mail, MilterPacket.nulTerminated(["<\(sender)>"]), macros: mailMacros(context), noReply: steps.contains(.noReplyMail), what: "MAIL")
        guard let reply else { return transactionDone() }
        return try messageDecision(reply, phase: .mail)
    }

    private func rcpt(_ recipient: String, _ context: PolicyContext) async throws -> PolicyDecision {
        guard !steps.contains(.noRcpt) else { return transactionDone() }
        let macros = queueMacros(context) + [("{rcpt_addr}", recipient), ("{rcpt_host}", domain(recipient)), ("{rcpt_mailer}", "smtp")]
        let reply = try await ask(.rcpt, MilterPacket.nulTerminated(["<\(recipient)>"]), macros: macros, noReply: steps.contains(.noReplyRcpt), what: "RCPT")
        guard let reply else { return transactionDone() }
        return try messageDecision(reply, phase: .rcpt)
    }

    private func data(_ context: PolicyContext) async throws -> PolicyDecision {
        if !inTransaction {
            let m = try await mail(context)
            guard m.verdict == .continue else { return m }
            for r in context.recipients where !skipTransaction {
                let d = try await rcpt(r, context)
                guard d.verdict == .continue else { return d }
            }
        }
        if skipTransaction { return transactionDone() }
        guard let message = context.message else { return transactionDone() }
        let dataMacros = queueMacros(context)
        if !steps.contains(.noData) {
            if let reply = try await ask(.data, [], macros: dataMacros, noReply: steps.contains(.noReplyData), what: "DATA"),
               let d = try earlyEnd(reply) { return d }
        }
        if !steps.contains(.noHeaders) {
            for field in message.fields where !field.name.isEmpty {
                let data = MilterPacket.nulTerminated([field.name, headerValue(field)])
                if let reply = try await ask(.header, data, macros: [], noReply: steps.contains(.noReplyHeader), what: "HEADER \(field.name)"),
                   let d = try earlyEnd(reply) { return d }
            }
        }
        if !steps.contains(.noEndOfHeader) {
            if let reply = try await ask(.endOfHeader, [], macros: dataMacros, noReply: steps.contains(.noReplyEndOfHeader), what: "EOH"),
               let d = try earlyEnd(reply) { return d }
        }
        if !steps.contains(.noBody) {
            let body: [UInt8] = message.body.withUnsafeBytes { Array($0) }
            var offset = 0
            bodyLoop: while offset < body.count {
                let end = min(offset + Milter.chunkSize, body.count)
                let chunk = Array(body[offset..<end])
                offset = end
                if let reply = try await ask(.body, chunk, macros: [], noReply: steps.contains(.noReplyBody), what: "BODY") {
                    if reply.code == Milter.Reply.skip.rawValue {
                        guard steps.contains(.skip) else { throw MilterError.notNegotiated("SKIP without SMFIP_SKIP") }
                        break bodyLoop
                    }
                    if let d = try earlyEnd(reply) { return d }
                }
            }
        }
        return try await endOfMessage(dataMacros)
    }

    /// End of message: the modification actions, then the final reply.
    private func endOfMessage(_ macros: [(String, String)]) async throws -> PolicyDecision {
        var changes: [MessageChange] = []
        var envelope: [EnvelopeChange] = []
        var newBody: [UInt8]?
        var hold: String?
        var packets: [MilterPacket] = []
        if !macros.isEmpty { packets.append(macroPacket(.endOfMessage, macros)) }
        packets.append(MilterPacket(.endOfMessage))
        try await connection!.send(packets)
        while true {
            let reply = try await connection!.receive(timeout: settings.timeout, waitingFor: "EOM")
            guard let kind = Milter.Reply(rawValue: reply.code) else {
                throw MilterError.garbage("unknown reply \(reply.character) to EOM")
            }
            switch kind {
            case .addHeader:
                try require(.addHeaders, "ADDHEADER")
                let s = reply.strings
                guard s.count >= 2 else { throw MilterError.garbage("ADDHEADER without name and value") }
                changes.append(.addHeader(name: s[0], value: canonicalValue(s[1])))
            case .insertHeader:
                try require(.addHeaders, "INSHEADER")
                let s = MilterPacket.strings(reply.data.dropFirst(4))
                guard let index = reply.uint32(at: 0), s.count >= 2 else { throw MilterError.garbage("INSHEADER without index, name and value") }
                changes.append(.insertHeader(index: Int(index), name: s[0], value: canonicalValue(s[1])))
            case .changeHeader:
                try require(.changeHeaders, "CHGHEADER")
                let s = MilterPacket.strings(reply.data.dropFirst(4))
                guard let index = reply.uint32(at: 0), s.count >= 1 else { throw MilterError.garbage("CHGHEADER without index and name") }
                let occurrence = max(1, Int(index))       // libmilter: 0 means the same as 1
                let value = s.count >= 2 ? s[1] : ""
                changes.append(value.isEmpty ? .removeHeader(name: s[0], occurrence: occurrence)
                                             : .changeHeader(name: s[0], occurrence: occurrence, value: canonicalValue(value)))
            case .replaceBody:
                try require(.changeBody, "REPLBODY")
                newBody = (newBody ?? []) + reply.data
            case .addRecipient:
                try require(.addRecipients, "ADDRCPT")
                envelope.append(.addRecipient(bare(reply.strings.first ?? "")))
            case .deleteRecipient:
                try require(.deleteRecipients, "DELRCPT")
                envelope.append(.removeRecipient(bare(reply.strings.first ?? "")))
            case .changeFrom:
                try require(.changeFrom, "CHGFROM")
                envelope.append(.changeSender(bare(reply.strings.first ?? "")))
            case .quarantine:
                try require(.quarantine, "QUARANTINE")
                let reason = reply.strings.first ?? ""
                hold = reason.isEmpty ? "quarantined by the milter" : "quarantined by the milter: \(reason)"
            case .addRecipientWithArgs:
                throw MilterError.notNegotiated("ADDRCPT_PAR (not offered)")
            case .accept, .continue, .reject, .tempfail, .replyCode, .discard:
                inTransaction = false
                if let newBody { changes.append(.replaceBody(canonicalBody(newBody))) }
                var decision = try messageDecision(reply, phase: .data)
                inTransaction = false
                skipTransaction = false
                if decision.verdict == .continue {
                    decision.changes = changes
                    decision.envelopeChanges = envelope
                    if let hold, decision.disposition == .deliver { decision.disposition = .hold(reason: hold) }
                    let summary = (changes.map(\.summary) + envelope.map(\.summary)).joined(separator: " ")
                    if !summary.isEmpty { decision.reason += "; asked: \(summary)" }
                }
                return decision
            default:
                throw MilterError.garbage("reply \(reply.character) is not valid at end of message")
            }
        }
    }

    private func require(_ action: Milter.Actions, _ name: String) throws {
        guard actions.contains(action) else { throw MilterError.notNegotiated(name) }
    }

    // MARK: - replies

    /// A reply to CONNECT or HELO.
    private func sessionDecision(_ reply: MilterPacket, phase: PolicyPhase) throws -> PolicyDecision? {
        guard let kind = Milter.Reply(rawValue: reply.code) else { throw MilterError.garbage("unknown reply \(reply.character) to \(phase)") }
        switch kind {
        case .continue: return nil
        case .accept:
            state = .finished          // accept the whole connection: no more callbacks
            connection?.close()
            return PolicyDecision(.continue, reason: "milter accepted the connection")
        case .discard:
            sessionDiscard = true
            return PolicyDecision(.continue, reason: "milter discards the session's mail")
        case .reject, .tempfail, .replyCode:
            let d = try refusal(reply, phase: phase)
            state = .finished
            connection?.close()
            return d
        default:
            throw MilterError.garbage("reply \(reply.character) is not valid after \(phase)")
        }
    }

    /// A reply to MAIL, RCPT, DATA, HEADER, EOH, BODY or EOM.
    private func messageDecision(_ reply: MilterPacket, phase: PolicyPhase) throws -> PolicyDecision {
        guard let kind = Milter.Reply(rawValue: reply.code) else { throw MilterError.garbage("unknown reply \(reply.character)") }
        switch kind {
        case .continue:
            return transactionDone(reason: "milter: continue")
        case .accept:
            skipTransaction = true
            return transactionDone(reason: "milter accepted the message")
        case .discard:
            skipTransaction = true
            transactionDisposition = .discard(reason: "discarded by the milter")
            return transactionDone(reason: "milter discarded the message")
        case .reject, .tempfail, .replyCode:
            let d = try refusal(reply, phase: phase)
            if phase != .rcpt { skipTransaction = true }
            return d
        default:
            throw MilterError.garbage("reply \(reply.character) is not valid after \(phase)")
        }
    }

    /// Between DATA and EOM: `nil` to go on, or the decision that ends the message early.
    private func earlyEnd(_ reply: MilterPacket) throws -> PolicyDecision? {
        if reply.code == Milter.Reply.continue.rawValue { return nil }
        return try messageDecision(reply, phase: .data)
    }

    private func transactionDone(reason: String = "milter: continue") -> PolicyDecision {
        PolicyDecision(.continue, reason: reason, disposition: transactionDisposition)
    }

    /// reject, tempfail and replycode as Postfix answers them.
    private func refusal(_ reply: MilterPacket, phase: PolicyPhase) throws -> PolicyDecision {
        switch reply.code {
        case Milter.Reply.reject.rawValue:
            return PolicyDecision(.reject(PolicyReply(code: phase == .connect ? 554 : 550, enhancedCode: "5.7.1", text: "Command rejected")), reason: "milter rejected")
        case Milter.Reply.tempfail.rawValue:
            return PolicyDecision(.defer(PolicyReply(code: phase == .connect ? 421 : 451, enhancedCode: "4.7.1", text: "Service unavailable - try again later")), reason: "milter tempfail")
        default:
            let reply = try Self.parseReplyCode(reply.strings.first ?? "")
            let verdict: PolicyVerdict = reply.code >= 500 ? .reject(reply) : .defer(reply)
            return PolicyDecision(verdict, reason: "milter replied \(reply)")
        }
    }

    /// `550 5.7.1 text` (or several lines `550-5.7.1 a\r\n550 5.7.1 b`, joined) → the reply.
    static func parseReplyCode(_ text: String) throws -> PolicyReply {
        let lines = text.split(whereSeparator: { $0 == "\r" || $0 == "\n" }).map(String.init)
        guard let first = lines.first, first.utf8.count >= 3, let code = Int(first.prefix(3)), (400...599).contains(code) else {
            throw MilterError.garbage("a REPLYCODE that is not a 4xx or 5xx reply: '\(text.prefix(80))'")
        }
        var enhanced: String?
        var texts: [String] = []
        for line in lines {
            var rest = Substring(line.dropFirst(min(4, line.count)))
            let token = rest.prefix { $0 != " " }
            let parts = token.split(separator: ".", omittingEmptySubsequences: false)
            if parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }), token.first == first.first {
                if enhanced == nil { enhanced = String(token) }
                rest = rest.dropFirst(token.count)
                while rest.first == " " { rest = rest.dropFirst() }
            }
            texts.append(String(rest))
        }
        return PolicyReply(code: code, enhancedCode: enhanced, text: texts.joined(separator: " "))
    }

    // MARK: - sending

    /// Sends the stage's macros and the command; waits for the reply unless the milter
    /// said it will not send one (NR_*).
    private func ask(_ command: Milter.Command, _ data: [UInt8], macros: [(String, String)], noReply: Bool, what: String) async throws -> MilterPacket? {
        var packets: [MilterPacket] = []
        if !macros.isEmpty { packets.append(macroPacket(command, macros)) }
        packets.append(MilterPacket(command, data))
        try await connection!.send(packets)
        guard !noReply else { return nil }
        return try await connection!.receive(timeout: settings.timeout, waitingFor: what)
    }

    private func macroPacket(_ command: Milter.Command, _ macros: [(String, String)]) -> MilterPacket {
        MilterPacket(.macro, [command.rawValue] + MilterPacket.nulTerminated(macros.flatMap { [$0.0, $0.1] }))
    }

    /// The CONNECT packet's host name: the client's confirmed name, else `[address]` (as Postfix).
    private func clientHostName(_ context: PolicyContext) -> String {
        context.connection.clientName ?? "[\(context.clientAddress)]"
    }

    /// Postfix's milter_connect_macros (`j {daemon_name} {daemon_addr} v _`) and the
    /// client's names and port.
    private func connectMacros(_ context: PolicyContext) -> [(String, String)] {
        let connection = context.connection
        var m = [("j", settings.hostname), ("{daemon_name}", context.listener), ("v", "Tollgate")]
        if let address = connection.serverAddress { m.append(("{daemon_addr}", address)) }
        if let port = connection.serverPort { m.append(("{daemon_port}", String(port))) }
        // As Postfix: the PTR name and the address, "(may be forged)" when the PTR name
        // is not the forward-confirmed one.
        let name = connection.clientName ?? "unknown"
        let ptr = connection.reverseClientName ?? "unknown"
        m.append(("_", "\(ptr) [\(context.clientAddress)]\(name.lowercased() == ptr.lowercased() ? "" : " (may be forged)")"))
        m.append(("{client_addr}", context.clientAddress))
        if let port = connection.clientPort { m.append(("{client_port}", String(port))) }
        m.append(("{client_name}", connection.clientName ?? "unknown"))
        m.append(("{client_ptr}", connection.reverseClientName ?? "unknown"))
        return m
    }

    /// Postfix's milter_helo_macros: the TLS session, once encrypted.
    private func heloMacros(_ context: PolicyContext) -> [(String, String)] {
        guard let tls = context.connection.tls else { return [] }
        var m = [("{tls_version}", tls.protocolVersion), ("{cipher}", tls.cipher)]
        if let bits = tls.cipherBits { m.append(("{cipher_bits}", String(bits))) }
        if let certificate = tls.clientCertificate {
            m.append(("{cert_subject}", certificate.subject))
            m.append(("{cert_issuer}", certificate.issuer))
        }
        return m
    }

    /// Postfix's milter_mail_macros (`i {auth_type} {auth_authen} {auth_author}
    /// {mail_addr} {mail_host} {mail_mailer}`).
    private func mailMacros(_ context: PolicyContext) -> [(String, String)] {
        var m = queueMacros(context)
        if let user = context.authenticatedUser {
            if let method = context.connection.saslMethod { m.append(("{auth_type}", method)) }
            m.append(("{auth_authen}", user))
        }
        let sender = context.sender ?? ""
        m.append(("{mail_addr}", sender))
        if !sender.isEmpty { m.append(("{mail_host}", domain(sender))) }
        m.append(("{mail_mailer}", "smtp"))
        return m
    }

    /// `i`, the queue id the message will be stored under (the id of the `250` reply),
    /// sent with MAIL, RCPT, DATA, EOH and EOM as Postfix does.
    private func queueMacros(_ context: PolicyContext) -> [(String, String)] {
        context.queueID.map { [("i", $0)] } ?? []
    }

    private func domain(_ address: String) -> String {
        address.lastIndex(of: "@").map { String(address[address.index(after: $0)...]) } ?? ""
    }

    /// The value as written after the colon (folding kept), without the leading space.
    private func headerValue(_ field: HeaderField) -> String {
        var v = field.rawValue
        while let b = v.first, b == 32 || b == 9 { v = v.dropFirst() }
        return String(decoding: v, as: UTF8.self)
    }

    private func bare(_ address: String) -> String {
        var a = address.trimmingSpaces
        if a.hasPrefix("<"), a.hasSuffix(">") { a = String(a.dropFirst().dropLast()) }
        return a
    }
}

/// A milter's header value with LF (or CRLF) line breaks as CRLF folding, each
/// continuation line starting with white space (OpenDKIM folds with `\n\t`).
func canonicalValue(_ value: String) -> String {
    let lines = value.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false)
    var out = ""
    for (i, line) in lines.enumerated() {
        let l = line.replacingOccurrences(of: "\r", with: "")
        if i == 0 { out = l; continue }
        if l.isEmpty { continue }
        out += "\r\n" + (l.first == " " || l.first == "\t" ? l : "\t" + l)
    }
    return out
}

/// A replacement body with bare LF (or CR) turned into CRLF.
func canonicalBody(_ bytes: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count + bytes.count / 32)
    var i = 0
    while i < bytes.count {
        let b = bytes[i]
        if b == 13 {
            out += [13, 10]
            i += (i + 1 < bytes.count && bytes[i + 1] == 10) ? 2 : 1
        } else if b == 10 {
            out += [13, 10]
            i += 1
        } else {
            if b != 0 { out.append(b) }
            i += 1
        }
    }
    return out
}
