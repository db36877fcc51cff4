import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A tiny policy server for the tests, on blocking sockets and its own threads: it
/// records every request (its attributes, in order, and which connection it came on)
/// and answers what ``respond`` says — an answer, silence, a closed connection or
/// raw bytes. TCP on 127.0.0.1 (a free port) or a unix socket.
final class RecordingPolicyServer: @unchecked Sendable {
    enum Response {
        /// `action=<text>` and an empty line.
        case action(String)
        /// These bytes as they are.
        case raw(String)
        /// Nothing, for this long, then the connection is closed.
        case silence(Double)
        /// Answer, then close the connection (a server's idle timeout).
        case actionThenClose(String)
    }

    struct Request {
        var attributes: [(String, String)]
        var connection: Int
        subscript(_ name: String) -> String? { attributes.first { $0.0 == name }?.1 }
    }

    let listener: Int32
    let port: Int
    let unixPath: String?
    private let state = Mutex<(requests: [Request], connections: Int, fds: [Int32], stopped: Bool)>(([], 0, [], false))
    let respond: @Sendable (Request) -> Response

    var requests: [Request] { state.withLock { $0.requests } }
    var connections: Int { state.withLock { $0.connections } }

    init(unixPath: String? = nil, respond: @escaping @Sendable (Request) -> Response) throws {
        self.respond = respond
        self.unixPath = unixPath
        if let unixPath {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                for (i, b) in unixPath.utf8.enumerated() { raw[i] = b }
            }
            let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            guard rc == 0 else { throw POSIXError(.EADDRINUSE) }
            listener = fd
            port = 0
        } else {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = 0
            var rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard rc == 0 else { throw POSIXError(.EADDRINUSE) }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            rc = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            _ = rc
            listener = fd
            port = Int(UInt16(bigEndian: addr.sin_port))
        }
        listen(listener, 16)
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// The `server:` setting that reaches it.
    var address: String { unixPath.map { "unix:\($0)" } ?? "127.0.0.1:\(port)" }

    func stop() {
        // Under the lock, so that a connection's fd is not closed (and its number
        // reused by another test's socket) while it is shut down here.
        state.withLock { s in
            s.stopped = true
            for fd in s.fds { shutdown(fd, Int32(SHUT_RDWR)) }
        }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        if let unixPath { unlink(unixPath) }
    }

    private func acceptLoop() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                return
            }
            let number = state.withLock { s -> Int in
                s.connections += 1
                s.fds.append(fd)
                return s.connections
            }
            let thread = Thread { [self] in serve(fd, connection: number) }
            thread.start()
        }
    }

    private func serve(_ fd: Int32, connection: Int) {
        defer {
            state.withLock { s in
                s.fds.removeAll { $0 == fd }
                close(fd)
            }
        }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { return }
            buffer += chunk[0..<n]
            while let end = buffer.indices.dropLast().first(where: { buffer[$0] == 10 && buffer[$0 + 1] == 10 }) {
                let text = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeSubrange(...(end + 1))
                let attributes = text.split(separator: "\n").map { line -> (String, String) in
                    let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
                }
                let request = Request(attributes: attributes, connection: connection)
                state.withLock { $0.requests.append(request) }
                switch respond(request) {
                case .action(let a): write(fd, "action=\(a)\n\n")
                case .raw(let r): write(fd, r)
                case .silence(let seconds):
                    usleep(UInt32(seconds * 1_000_000))
                    return
                case .actionThenClose(let a):
                    write(fd, "action=\(a)\n\n")
                    return
                }
            }
        }
    }

    private func write(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}
