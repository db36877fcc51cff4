import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One HTTP/1.1 exchange over a plain TCP socket (`Connection: close`), for tests of
/// the relay's web console and metrics: the status, the header fields and the body,
/// nothing followed or remembered — the test sends cookies itself and sees redirects.
public enum HTTPTestClient {
    public struct Response: Sendable {
        public var status: Int
        /// Field names lower-cased, in order (a name may repeat: `set-cookie`).
        public var headers: [(name: String, value: String)]
        public var body: String

        public func header(_ name: String) -> String? { headers.first { $0.name == name.lowercased() }?.value }

        /// `name=value` of every `Set-Cookie`, attributes left out.
        public var cookies: [String: String] {
            var out: [String: String] = [:]
            for (name, value) in headers where name == "set-cookie" {
                let pair = value.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
                if let eq = pair.firstIndex(of: "=") { out[String(pair[..<eq])] = String(pair[pair.index(after: eq)...]) }
            }
            return out
        }

        /// The `Set-Cookie` field that sets `name`, whole (attributes included).
        public func setCookie(_ name: String) -> String? {
            headers.first { $0.name == "set-cookie" && $0.value.hasPrefix(name + "=") }?.value
        }
    }

    /// `method path` to 127.0.0.1:`port`; `form` is sent url-encoded; `cookies` as one
    /// `Cookie` field.
    public static func request(
        port: Int, _ path: String, method: String = "GET", form: [(String, String)]? = nil, cookies: [String: String] = [:],
        headers: [(String, String)] = [], host: String? = nil, timeout: Double = 10
    ) throws -> Response {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host ?? "127.0.0.1:\(port)")\r\nConnection: close\r\n"
        if !cookies.isEmpty { head += "Cookie: " + cookies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ") + "\r\n" }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        var body = ""
        if let form {
            body = form.map { "\(encode($0.0))=\(encode($0.1))" }.joined(separator: "&")
            head += "Content-Type: application/x-www-form-urlencoded\r\n"
        }
        if form != nil || method == "POST" { head += "Content-Length: \(body.utf8.count)\r\n" }
        let raw = try exchange(port: port, Array((head + "\r\n" + body).utf8), timeout: timeout)
        return try parse(raw)
    }

    /// `POST path` with `form`.
    public static func post(port: Int, _ path: String, form: [(String, String)], cookies: [String: String] = [:]) throws -> Response {
        try request(port: port, path, method: "POST", form: form, cookies: cookies)
    }

    static func encode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x2E || byte == 0x5F {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(2)
            }
        }
        return out
    }

    private static func exchange(port: Int, _ request: [UInt8], timeout: Double) throws -> [UInt8] {
        let fd = try SocketAddress.connectedSocket(host: "127.0.0.1", port: port, timeout: timeout)
        defer { close(fd) }
        let deadline = MonotonicTime.now + timeout
        var sent = 0
        while sent < request.count {
            try wait(fd, POLLOUT, deadline)
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EAGAIN || errno == EINTR { continue }
            guard n > 0 else { throw TestSupportError.system("send") }
            sent += n
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            try wait(fd, POLLIN, deadline)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EAGAIN || errno == EINTR { continue }
            if n <= 0 { break }
            received += chunk[0..<n]
        }
        return received
    }

    private static func wait(_ fd: Int32, _ events: Int32, _ deadline: Double) throws {
        var poller = pollfd(fd: fd, events: Int16(events), revents: 0)
        let left = deadline - MonotonicTime.now
        guard left > 0, Glibc.poll(&poller, 1, Int32(left * 1000) + 1) > 0 else {
            throw TestSupportError(.timedOut, "no HTTP answer in time")
        }
    }

    private static func parse(_ raw: [UInt8]) throws -> Response {
        let text = String(decoding: raw, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw TestSupportError(.protocolViolation, "not an HTTP response: \(text.prefix(200))") }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw TestSupportError(.protocolViolation, "bad status line: \(lines[0])") }
        var headers: [(String, String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var body = String(text[split.upperBound...])
        if headers.contains(where: { $0.0 == "transfer-encoding" && $0.1.lowercased() == "chunked" }) { body = dechunk(body) }
        return Response(status: status, headers: headers, body: body)
    }

    private static func dechunk(_ text: String) -> String {
        var out = ""
        var rest = Substring(text)
        while let lineEnd = rest.range(of: "\r\n"), let size = Int(rest[..<lineEnd.lowerBound].split(separator: ";").first ?? "", radix: 16), size > 0 {
            let start = lineEnd.upperBound
            let bytes = Array(rest[start...].utf8)
            out += String(decoding: bytes.prefix(size), as: UTF8.self)
            rest = Substring(String(decoding: bytes.dropFirst(size + 2), as: UTF8.self))
        }
        return out
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
