/// Something a transcript can be played against: the pure session state machine,
/// or a live server over a socket.
public protocol TranscriptPeer {
    /// The client writes `bytes` in one write.
    mutating func write(_ bytes: [UInt8]) throws
    /// The server's next reply (a live peer waits for it, with a timeout).
    mutating func nextReply() throws -> SMTPTestReply
    /// Whether the server closed the connection after the reply just read; `expected`
    /// says what the transcript demands (a live peer only waits for a close it expects).
    mutating func closedAfterReply(expected: Bool) -> Bool
    /// Replies the server sent that no `<` line read (checked at the end).
    mutating func unreadReplies() -> [SMTPTestReply]
    /// Carries out a `policy`, `verifier` or `store` line.
    mutating func apply(_ step: Transcript.Step.Kind) throws
}

/// Where and why a transcript failed.
public struct TranscriptFailure: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var line: Int
    /// `file:line`, with the `repeat` pass if any.
    public var location: String
    public var message: String

    public var description: String { "\(location): \(message)" }
}

extension Transcript {
    /// Plays the dialogue against `peer`, step by step; the first difference ends it.
    public func run(against peer: inout some TranscriptPeer) -> TranscriptFailure? {
        var closed = false
        for step in steps {
            func failure(_ message: String) -> TranscriptFailure {
                TranscriptFailure(file: name, line: step.line, location: step.location(in: name), message: message)
            }
            do {
                switch step.kind {
                case .send(let bytes):
                    if closed { return failure("the client writes, but the server closed the connection") }
                    try peer.write(bytes)
                case .expect(let expectation):
                    if closed { return failure("expected \(expectation), but the server closed the connection") }
                    let reply = try peer.nextReply()
                    closed = peer.closedAfterReply(expected: expectation.closes)
                    if let wrong = expectation.mismatch(reply, closed: closed) { return failure(wrong) }
                default:
                    try peer.apply(step.kind)
                }
            } catch {
                return failure("\(error)")
            }
        }
        let extra = peer.unreadReplies()
        guard extra.isEmpty else {
            let line = steps.last?.line ?? 1
            return TranscriptFailure(file: name, line: line, location: "\(name):\(line)", message: "replies no line expected: \(extra.map(\.description.replacingNewlines))")
        }
        return nil
    }
}

extension Transcript {
    /// The folder of the scenario files, `Tests/SMTPServerTests/Transcripts`.
    public static let folder: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(2)
        return parts.joined(separator: "/") + "/SMTPServerTests/Transcripts"
    }()

    /// The names of every `.smtp` file in ``folder``, sorted.
    public static var fileNames: [String] { TestFiles.list(folder).filter { $0.hasSuffix(".smtp") } }

    /// Reads ``folder``/`name`.
    public static func load(_ name: String) throws -> Transcript {
        guard let text = TestFiles.readString(folder + "/" + name) else {
            throw TestSupportError(.notFound, "no transcript \(folder)/\(name)")
        }
        return try Transcript(parsing: text, name: name)
    }

    /// The full path of the file, for source locations.
    public var path: String { Self.folder + "/" + name }
}
