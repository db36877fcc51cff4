import Testing
import TestSupport

/// Every `.smtp` scenario of `Tests/SMTPServerTests/Transcripts/` against a live
/// `tollgate serve` over loopback, the bytes sent as written (one write per group).
/// Scenarios that need TLS, AUTH or the application's verdicts say `live: no` and
/// are cancelled here with their reason; `TranscriptMachineTests` plays them all.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(10))) struct TranscriptLiveTests {
        @Test("Transcript against a live relay", arguments: Transcript.fileNames)
        func transcript(_ name: String) throws {
            let transcript = try Transcript.load(name)
            if let reason = transcript.notLiveReason {
                // The console does not show a cancelled case's reason: print it too.
                print("⊘ \(name) skipped live: \(reason)")
                try Test.cancel("\(name) skipped live: \(reason)")
            }
            let relay = try RelayProcess(rest: Self.configuration(transcript.config))
            try relay.start()
            defer { relay.stop() }
            var peer = try TranscriptSocketPeer(port: relay.port)
            defer { peer.close() }
            if let failure = transcript.run(against: &peer) {
                let location = SourceLocation(fileID: "Transcripts/\(name)", filePath: transcript.path, line: failure.line, column: 1)
                Issue.record(Comment(rawValue: "\(failure)\nrelay log: \(relay.directory.path)/serve.log"), sourceLocation: location)
            } else {
                relay.directory.remove()
            }
        }

        /// The relay's configuration after its plaintext listener: the scenario's limits
        /// and an outbox folder as the upstream.
        static func configuration(_ config: Transcript.Config) -> String {
            """
            upstreams:
              - name: out
                directory: outbox
            limits:
              max_message_size: \(config.maxMessageSize)
              max_recipients: \(config.maxRecipients)
              bare_newline: \(config.bareNewline)
            """
        }
    }
}
