import Testing
import TestSupport

/// Every `.smtp` scenario of `Tests/SMTPServerTests/Transcripts/` against a live
/// `tollgate serve` over loopback, the bytes sent as written (one write per group).
/// Scenarios that need a TLS session, a login or the application's verdicts say
/// `live: no` and are cancelled here with their reason; `TranscriptMachineTests`
/// plays them all.
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
            let relay = try Self.relay(transcript.config)
            // Deferred in reverse: the relay stops before its folder goes (kept when the scenario fails).
            var passed = false
            defer { if passed { relay.directory.remove() } }
            try relay.start()
            defer { relay.stop() }
            var peer = try TranscriptSocketPeer(port: relay.port)
            defer { peer.close() }
            if let failure = transcript.run(against: &peer) {
                let location = SourceLocation(fileID: "Transcripts/\(name)", filePath: transcript.path, line: failure.line, column: 1)
                Issue.record(Comment(rawValue: "\(failure)\nrelay log: \(relay.directory.path)/serve.log"), sourceLocation: location)
            } else {
                passed = true
            }
        }

        /// A relay with the scenario's listener (plaintext, or STARTTLS with a test
        /// certificate) and limits, and an outbox folder as the upstream.
        static func relay(_ config: Transcript.Config) throws -> RelayProcess {
            let directory = try TemporaryDirectory(label: "transcript")
            var tls = ""
            if config.tls == "starttls" {
                let certs = try TestCertificates.make(in: directory.path + "/certs")
                tls = "tls:\n  certificate: \(certs.certificatePath)\n  key: \(certs.keyPath)"
            }
            return try RelayProcess(
                listener: "tls: \(config.tls)\n    auth: \(config.auth)\n    auth_after_helo: \(config.authAfterHelo)\n    strict_envelopes: \(config.strictEnvelopes)",
                rest: """
                    \(tls)
                    upstreams:
                      - name: out
                        directory: outbox
                    limits:
                      max_message_size: \(config.maxMessageSize)
                      max_recipients: \(config.maxRecipients)
                      bare_newline: \(config.bareNewline)
                    """,
                directory: directory
            )
        }
    }
}
