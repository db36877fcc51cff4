import Foundation
import HummingbirdBcrypt
import NIOPosix

/// The administrators who may sign in (`console.users`): an `htpasswd -B` file, one
/// `name:hash` a line, bcrypt hashes only. Blank lines and `#` comments are skipped.
public struct ConsoleUsers: Sendable {
    /// A problem with the file, located as `file:line: what is wrong`.
    public struct Problem: Error, CustomStringConvertible, Sendable {
        public var file: String
        public var line: Int
        public var message: String
        public var description: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
    }

    let hashes: [String: String]
    /// Checked for names not in the file, at the file's highest cost, so that the time
    /// of an answer does not tell which names exist.
    let decoy: String
    public var names: [String] { hashes.keys.sorted() }

    init(hashes: [String: String]) {
        self.hashes = hashes
        let cost = hashes.values.compactMap { UInt8(String($0.dropFirst(4).prefix(2))) }.max() ?? 10
        decoy = Bcrypt.hash(UUID().uuidString, cost: cost)
    }

    /// Reads `path`; throws every problem found (all lines are checked).
    public static func load(_ path: String) throws(ProblemList) -> ConsoleUsers {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ProblemList(problems: [Problem(file: path, line: 0, message: "cannot read the users file: \((error as NSError).localizedDescription)")])
        }
        return try parse(text, file: path)
    }

    /// Every problem of a users file, one a line.
    public struct ProblemList: Error, CustomStringConvertible, Sendable {
        public var problems: [Problem]
        public var description: String { problems.map(\.description).joined(separator: "\n") }
    }

    public static func parse(_ text: String, file: String) throws(ProblemList) -> ConsoleUsers {
        var hashes: [String: String] = [:]
        var problems: [Problem] = []
        // LF or CRLF line ends ("\r\n" is one Character: split on any newline).
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            func problem(_ message: String) { problems.append(Problem(file: file, line: index + 1, message: message)) }
            guard let colon = line.firstIndex(of: ":") else {
                problem("expected name:hash (as `htpasswd -B` writes)")
                continue
            }
            let name = String(line[..<colon])
            let hash = String(line[line.index(after: colon)...])
            if name.isEmpty || name.contains(where: { $0 == " " || $0 == "\t" }) {
                problem("a user name must not be empty or contain spaces")
            } else if !isBcrypt(hash) {
                problem("the hash for \(name) is not bcrypt ($2y$, $2b$ or $2a$ with a cost and 53 characters); make it with htpasswd -B")
            } else if hashes[name] != nil {
                problem("\(name) is listed twice")
            } else {
                hashes[name] = hash
            }
        }
        if hashes.isEmpty, problems.isEmpty { problems.append(Problem(file: file, line: 0, message: "no users in the file")) }
        guard problems.isEmpty else { throw ProblemList(problems: problems) }
        return ConsoleUsers(hashes: hashes)
    }

    /// `$2y$NN$` + 53 characters of bcrypt's base64.
    static func isBcrypt(_ hash: String) -> Bool {
        let bytes = Array(hash.utf8)
        guard bytes.count == 60, bytes[0] == UInt8(ascii: "$"), bytes[1] == UInt8(ascii: "2"),
            [UInt8(ascii: "a"), UInt8(ascii: "b"), UInt8(ascii: "y")].contains(bytes[2]), bytes[3] == UInt8(ascii: "$"),
            let cost = Int(String(decoding: bytes[4...5], as: UTF8.self)), (4...31).contains(cost), bytes[6] == UInt8(ascii: "$")
        else { return false }
        return bytes[7...].allSatisfy { b in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || b == UInt8(ascii: ".") || b == UInt8(ascii: "/")
        }
    }

    /// Whether `password` is `name`'s. bcrypt is slow by design, so this runs on NIO's
    /// blocking pool, never on an event loop or the cooperative pool. An unknown name
    /// costs a verification too, so the timing does not tell which names exist.
    public func verify(_ name: String, _ password: String) async -> Bool {
        // `htpasswd -B` writes $2y$; the library knows $2b$ (the same algorithm, OpenBSD's name).
        let stored = hashes[name]
        let hash = (stored ?? decoy).replacingOccurrences(of: "$2y$", with: "$2b$", options: .anchored)
        let matches = (try? await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: hash) }) ?? false
        return stored != nil && matches
    }

    /// The hash `name` signs in with (sessions end when it changes).
    func hash(of name: String) -> String? { hashes[name] }
}
