import Dispatch
import FuzzSupport
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import SMTPCore
import SMTPServer

// A whole session, Dovecot-style (RELIABILITY G2): the real state machine and NIO
// handler on an in-memory channel, fed arbitrary client bytes one line a read (the
// replies to each read are out before the next, as a well-behaved pipelining client
// waits at DATA), with a delegate that decides at every phase, accepts the password
// `secret` and stores at once. Input: one flag byte (bit 0: the session is under TLS,
// so AUTH is offered; bit 1: a small size limit; bit 2: bare newlines rejected; bit
// 3: policy decisions at every phase, off the event loop), then the client's bytes.
// Oracles: the machine never traps; no DATA (or BDAT ... LAST) stores more than one
// message — stores never outnumber the 354s plus the BDAT LAST commands; every stored
// message is canonical (no bare CR, bare LF or NUL) and within the size limit; every
// byte written is a well-formed reply line (`ddd[ -]text CRLF`).

struct Notes: SessionAnnotations {
    init() {}
    mutating func merge(_ other: Notes) {}
}

final class Recorder: SMTPSessionDelegate {
    typealias Annotations = Notes
    let decisions: Bool
    let state = NIOLockedValueBox((stored: [ReceivedMessage](), running: 0))

    init(decisions: Bool) { self.decisions = decisions }

    var running: Int { state.withLockedValue { $0.running } }
    var stored: [ReceivedMessage] { state.withLockedValue { $0.stored } }

    func needsDecision(_ phase: SessionPhase) -> Bool { decisions }

    func decide(_ request: PolicyRequest<Notes>) async -> SessionDecision<Notes> {
        started()
        defer { finished() }
        return SessionDecision(.proceed)
    }

    func authenticate(_ credentials: SASLCredentials, _ request: PolicyRequest<Notes>) async -> AuthResult<Notes> {
        started()
        defer { finished() }
        return AuthResult(credentials.password == "secret" ? .success(user: credentials.username) : .failure)
    }

    func store(_ request: StoreRequest<Notes>) async throws -> String {
        let n = state.withLockedValue { state -> Int in
            state.stored.append(request.message)
            state.running += 1
            return state.stored.count
        }
        defer { finished() }
        return "Q\(n)"
    }

    private func started() { state.withLockedValue { $0.running += 1 } }
    private func finished() { state.withLockedValue { $0.running -= 1 } }
}

let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSession(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    guard let flags = input.first else { return 0 }
    let done = DispatchSemaphore(value: 0)
    Task {
        await session(flags: flags, bytes: Array(input.dropFirst()))
        done.signal()
    }
    done.wait()
    return 0
}

func session(flags: UInt8, bytes: [UInt8]) async {
    let maxSize = flags & 2 != 0 ? 300 : 100_000
    let configuration = SMTPSessionConfiguration(
        hostname: "relay.test", auth: flags & 1 != 0 ? .optional : .none, maxMessageSize: maxSize,
        maxRecipients: 5, bareNewline: flags & 4 != 0 ? .reject : .normalize
    )
    let delegate = Recorder(decisions: flags & 8 != 0)
    let channel = NIOAsyncTestingChannel()
    try! await channel.testingEventLoop.executeInContext {
        let handler = SMTPServerHandler(
            configuration: configuration, delegate: delegate, sslContext: nil, implicitTLS: flags & 1 != 0,
            timeouts: SMTPTimeouts(command: .seconds(300), data: .seconds(600)), sessionID: "F", clientAddress: "192.0.2.9", logger: logger
        )
        try channel.pipeline.syncOperations.addHandler(handler)
    }
    try! await channel.connect(to: SocketAddress(ipAddress: "192.0.2.9", port: 40000))
    var written: [UInt8] = []
    await settle(channel, delegate, into: &written)
    var lastCommands = 0
    var start = 0
    while start < bytes.count, channel.isActive {
        let end = bytes[start...].firstIndex(of: 10).map { $0 + 1 } ?? bytes.count
        let line = bytes[start..<end]
        let upper = line.prefix(40).map { $0 >= 97 && $0 <= 122 ? $0 - 32 : $0 }
        if upper.starts(with: Array("BDAT ".utf8)), String(decoding: upper, as: UTF8.self).contains("LAST") { lastCommands += 1 }
        start = end
        _ = try? await channel.writeInbound(ByteBuffer(bytes: line))
        await settle(channel, delegate, into: &written)
    }
    _ = try? await channel.close()
    await settle(channel, delegate, into: &written)
    _ = try? await channel.finish(acceptAlreadyClosed: true)

    let replies = replyLines(written)
    check(replies != nil, "malformed reply bytes: \(String(decoding: written.suffix(200), as: UTF8.self).debugDescription)")
    let dataStarts = replies?.filter { $0.starts(with: Array("354 ".utf8)) }.count ?? 0
    let stored = delegate.stored
    check(stored.count <= dataStarts + lastCommands, "\(stored.count) messages stored for \(dataStarts) DATA and \(lastCommands) BDAT LAST")
    for message in stored {
        let content = Array(message.content.readableBytesView)
        check(isCanonical(content), "a stored message has a bare CR, a bare LF or a NUL")
        check(content.count <= maxSize, "a stored message of \(content.count) octets over the limit \(maxSize)")
    }
}

/// Lets the loop and the delegate's tasks run until nothing is pending, collecting output.
func settle(_ channel: NIOAsyncTestingChannel, _ delegate: Recorder, into written: inout [UInt8]) async {
    var quiet = 0
    while quiet < 3 {
        await Task.yield()
        await channel.testingEventLoop.run()
        quiet += 1
        while let out = try? await channel.readOutbound(as: ByteBuffer.self) {
            written += out.readableBytesView
            quiet = 0
        }
        if delegate.running > 0 { quiet = 0 }
    }
}

/// The reply lines, if every byte belongs to one of the form `ddd[ -]text CRLF`.
func replyLines(_ bytes: [UInt8]) -> [[UInt8]]? {
    var lines: [[UInt8]] = []
    var current: [UInt8] = []
    var i = 0
    while i < bytes.count {
        let b = bytes[i]
        if b == 13 {
            guard i + 1 < bytes.count, bytes[i + 1] == 10 else { return nil }
            guard current.count >= 4, current[0...2].allSatisfy({ $0 >= 48 && $0 <= 57 }), current[3] == 32 || current[3] == 45 else { return nil }
            lines.append(current)
            current = []
            i += 2
            continue
        }
        guard b != 10, b != 0 else { return nil }
        current.append(b)
        i += 1
    }
    return current.isEmpty ? lines : nil
}
