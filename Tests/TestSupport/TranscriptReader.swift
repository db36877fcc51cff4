/// The first pass over a `.smtp` file: comments, the header (`config`, `live:`)
/// and `repeat N` … `end` blocks, expanded with `{i}` replaced by the pass number.
/// What remains are the dialogue's lines, each with where it came from.
struct TranscriptReader {
    /// A dialogue line after `repeat` expansion.
    struct Entry {
        var line: Int
        var passes: [Int]
        var text: String
    }

    /// An open `repeat` block (the file itself is the outermost, once).
    private struct Block {
        var count: Int
        var line: Int
        var entries: [Entry] = []
    }

    private(set) var transcript: Transcript
    /// Where `config` was (for errors about it).
    private(set) var configLine = 1
    private var blocks = [Block(count: 1, line: 0)]
    private var summaryDone = false

    init(name: String) {
        transcript = Transcript(name: name)
    }

    mutating func read(_ source: String) throws(TranscriptError) -> [Entry] {
        for (index, raw) in source.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var text = String(raw)
            if text.hasSuffix("\r") { text.removeLast() }
            try read(text, line: index + 1)
        }
        guard blocks.count == 1 else { throw error(blocks[blocks.count - 1].line, "repeat without end") }
        return blocks[0].entries
    }

    private mutating func read(_ text: String, line: Int) throws(TranscriptError) {
        let trimmed = text.drop { $0 == " " || $0 == "\t" }
        if trimmed.isEmpty { return }
        if trimmed.hasPrefix("#") {
            if !summaryDone {
                let comment = trimmed.dropFirst().drop { $0 == " " }
                transcript.summary += (transcript.summary.isEmpty ? "" : " ") + comment
            }
            return
        }
        summaryDone = true
        let words = trimmed.split(separator: " ").map(String.init)
        switch words[0] {
        case "config":
            guard blocks.count == 1, blocks[0].entries.isEmpty else { throw error(line, "config goes before the dialogue") }
            configLine = line
            for word in words.dropFirst() { try configure(word, line: line) }
        case "live:":
            guard words.count >= 3, ["no", "no,"].contains(words[1]) else { throw error(line, "write `live: no REASON` (scenarios run live unless they say why not)") }
            transcript.notLiveReason = words.dropFirst(2).joined(separator: " ")
        case "repeat":
            guard words.count == 2, let count = Int(words[1]), count > 0 else { throw error(line, "write `repeat N` (N > 0)") }
            blocks.append(Block(count: count, line: line))
        case "end":
            guard words.count == 1, blocks.count > 1 else { throw error(line, "end without repeat") }
            let block = blocks.removeLast()
            for pass in 1...block.count {
                for var entry in block.entries {
                    entry.text = entry.text.replacing("{i}", with: String(pass))
                    entry.passes.insert(pass, at: 0)
                    blocks[blocks.count - 1].entries.append(entry)
                }
            }
        default:
            // `>` lines keep their exact text; the others may be indented.
            let kept = trimmed.hasPrefix(">") ? String(trimmed) : words.joined(separator: " ")
            blocks[blocks.count - 1].entries.append(Entry(line: line, passes: [], text: kept))
        }
    }

    /// One `key=value` of a `config` line.
    private mutating func configure(_ word: String, line: Int) throws(TranscriptError) {
        let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw error(line, "config takes key=value words") }
        let (key, value) = (parts[0], parts[1])
        switch key {
        case "tls" where ["none", "starttls", "implicit"].contains(value): transcript.config.tls = value
        case "auth" where ["none", "optional", "required"].contains(value): transcript.config.auth = value
        case "bare_newline" where ["normalize", "reject"].contains(value): transcript.config.bareNewline = value
        case "auth_after_helo" where ["yes", "no"].contains(value): transcript.config.authAfterHelo = value == "yes"
        case "strict_envelopes" where ["yes", "no"].contains(value): transcript.config.strictEnvelopes = value == "yes"
        case "max_recipients" where Int(value).map { $0 >= 100 } == true: transcript.config.maxRecipients = Int(value)!
        case "max_message_size" where Int(value).map { $0 >= 65_536 } == true: transcript.config.maxMessageSize = Int(value)!
        default:
            throw error(line, "bad config \(word): tls=none|starttls|implicit auth=none|optional|required bare_newline=normalize|reject auth_after_helo=yes|no strict_envelopes=yes|no max_recipients=N(>=100) max_message_size=N(>=65536)")
        }
    }

    private func error(_ line: Int, _ message: String) -> TranscriptError {
        TranscriptError(transcript.name, line, message)
    }
}
