/// A transcript's server side at the other end of a TCP connection (a live
/// `tollgate serve`): each write is one `send`, each reply is read with a timeout,
/// and a close the transcript expects is waited for.
public struct TranscriptSocketPeer: TranscriptPeer {
    private let client: SMTPTestClient
    private let timeout: Double

    /// Connects to 127.0.0.1:`port`; the greeting is the first reply read.
    public init(port: Int, timeout: Double = 10) throws {
        self.timeout = timeout
        client = try SMTPTestClient.connect(port: port, readTimeout: timeout)
    }

    public mutating func write(_ bytes: [UInt8]) throws {
        try client.sendRaw(bytes)
    }

    public mutating func nextReply() throws -> SMTPTestReply {
        try client.readReply(timeout: timeout)
    }

    /// Only a close the transcript expects is waited for (an unexpected one shows
    /// up as a failure to read the next reply).
    public mutating func closedAfterReply(expected: Bool) -> Bool {
        expected && client.peerCloses(within: 5)
    }

    public mutating func unreadReplies() -> [SMTPTestReply] { [] }

    public mutating func apply(_ step: Transcript.Step.Kind) throws {
        throw TestSupportError(.notFound, "a live server takes no policy, verifier or store lines")
    }

    public func close() {
        client.close()
    }
}
