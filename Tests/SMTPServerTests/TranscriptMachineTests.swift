import Testing
import TestSupport

/// Every `.smtp` scenario in `Transcripts/`, played against the pure session state
/// machine through a real framer (README "SMTP behaviour", rule by rule; the index is
/// `Transcripts/README.md`). The same files run against a live relay in
/// `TollgateTests/TranscriptLiveTests`.
@Suite struct TranscriptMachineTests {
    @Test("Transcript against the state machine", arguments: Transcript.fileNames)
    func transcript(_ name: String) throws {
        let transcript = try Transcript.load(name)
        var peer = MachinePeer(transcript.config)
        if let failure = transcript.run(against: &peer) {
            Issue.record(Comment(rawValue: failure.description), sourceLocation: transcript.sourceLocation(line: failure.line))
        }
        for violation in peer.violations {
            Issue.record(Comment(rawValue: "\(name): \(violation)"))
        }
    }

    /// Enough scenarios are found (a wrong folder would make this suite pass vacuously).
    @Test func scenariosAreFound() {
        #expect(Transcript.fileNames.count >= 25, "\(Transcript.folder)")
    }
}

extension Transcript {
    /// Points a failure at the line of the `.smtp` file.
    func sourceLocation(line: Int) -> SourceLocation {
        SourceLocation(fileID: "Transcripts/\(name)", filePath: path, line: line, column: 1)
    }
}
