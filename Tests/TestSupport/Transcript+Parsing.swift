/// Reading a `.smtp` file (grammar: `Tests/SMTPServerTests/Transcripts/README.md`).
extension Transcript {
    /// The SMTP phases a `policy` line may name (`SessionPhase` in `SMTPServer`).
    public static let phases = ["connect", "helo", "starttls", "auth", "mail", "rcpt", "data"]

    /// Reads a scenario; `name` (the file name) is used in error messages.
    public init(parsing source: String, name: String) throws(TranscriptError) {
        var reader = TranscriptReader(name: name)
        let entries = try reader.read(source)
        self = reader.transcript
        for entry in entries {
            try append(entry)
        }
        try checkLive(configLine: reader.configLine)
    }

    /// Turns one expanded line into a step; consecutive sends become one write.
    private mutating func append(_ entry: TranscriptReader.Entry) throws(TranscriptError) {
        do throws(TranscriptText.Failure) {
            let text = try TranscriptText.expand(entry.text, pass: nil)
            let kind: Step.Kind
            if text.hasPrefix(">>") {
                kind = .send(try TranscriptText.unescape(Self.afterMarker(text, 2)))
            } else if text.hasPrefix(">") {
                kind = .send(Array(Self.afterMarker(text, 1).utf8) + [13, 10])
            } else if text.hasPrefix("<") {
                guard let expectation = ReplyExpectation(parsing: Self.afterMarker(text, 1)) else {
                    throw TranscriptText.Failure("a reply line is `< CODE [ENHANCED-CODE] [TEXT] [close]`")
                }
                kind = .expect(expectation)
            } else {
                kind = try Self.directive(text.split(separator: " ").map(String.init))
            }
            if case .send(let more) = kind, let last = steps.last, case .send(let bytes) = last.kind {
                steps[steps.count - 1].kind = .send(bytes + more)
                return
            }
            steps.append(Step(kind: kind, line: entry.line, passes: entry.passes))
        } catch {
            throw TranscriptError(name, entry.line, error.message)
        }
    }

    /// The text after `>`, `>>` or `<` and one space.
    private static func afterMarker(_ text: String, _ length: Int) -> String {
        let rest = text.dropFirst(length)
        return String(rest.first == " " ? rest.dropFirst() : rest)
    }

    /// `policy PHASE VERDICT [CODE ENHANCED TEXT]`, `verifier up|down`, `store ok|fail`.
    private static func directive(_ words: [String]) throws(TranscriptText.Failure) -> Step.Kind {
        switch words.first {
        case "verifier" where words.count == 2 && ["up", "down"].contains(words[1]):
            return .verifier(available: words[1] == "up")
        case "store" where words.count == 2 && ["ok", "fail"].contains(words[1]):
            return .store(succeeds: words[1] == "ok")
        case "policy" where words.count >= 3:
            guard phases.contains(words[1]) else { throw .init("unknown phase \(words[1]) (\(phases.joined(separator: ", ")))") }
            return .policy(phase: words[1], try verdict(Array(words.dropFirst(2))))
        default:
            throw .init("not a step: \(words.joined(separator: " ")) (`>`, `>>`, `<`, policy, verifier, store, repeat, end)")
        }
    }

    private static func verdict(_ words: [String]) throws(TranscriptText.Failure) -> Verdict {
        if words == ["proceed"] { return .proceed }
        guard words.count >= 3, let code = Int(words[1]), ReplyExpectation.isEnhancedCode(words[2]), words[2].first == words[1].first else {
            throw .init("a verdict is `proceed` or `reject|defer|disconnect CODE ENHANCED-CODE [TEXT]`")
        }
        let text = words.dropFirst(3).joined(separator: " ")
        switch (words[0], code / 100) {
        case ("reject", 5), ("defer", 4): return .refuse(code: code, enhancedCode: words[2], text: text)
        case ("disconnect", 4), ("disconnect", 5): return .disconnect(code: code, enhancedCode: words[2], text: text)
        default: throw .init("reject takes a 5xx code, defer a 4xx, disconnect either")
        }
    }

    /// Scenarios the live relay cannot play must say so, with the reason.
    private func checkLive(configLine: Int) throws(TranscriptError) {
        guard notLiveReason == nil else { return }
        if !config.runsLive {
            throw TranscriptError(name, configLine, "the live relay has no implicit TLS, and AUTH only with STARTTLS: add `live: no REASON`")
        }
        if let step = steps.first(where: \.kind.isApplicationAnswer) {
            throw TranscriptError(name, step.line, "only the machine runner gives policy, verifier and store answers: add `live: no REASON`")
        }
    }
}
