import Foundation
import Logging
import Testing

@testable import TollgateApp

/// The relay's log lines: one per event, text with sorted keys, or JSON that parses.
@Suite struct LogHandlerTests {
    func event(_ message: Logger.Message, _ metadata: Logger.Metadata) -> LogEvent {
        LogEvent(level: .info, message: message, metadata: metadata, source: "TollgateApp", file: #file, function: #function, line: #line)
    }

    @Test func textLinesHaveSortedKeysAndEndOnce() {
        var handler = RelayLogHandler(label: "tollgate", format: .text)
        handler[metadataKey: "smtp.session.id"] = "S1"
        let line = handler.render(event("message accepted", ["queue.id": "Q1", "message.size": "42"]), timestamp: "2026-12-01T00:00:00.000Z")
        #expect(line == "2026-12-01T00:00:00.000Z info tollgate: message.size=42 queue.id=Q1 smtp.session.id=S1 [TollgateApp] message accepted\n")
    }

    @Test func jsonLinesParseWhateverTheValues() throws {
        let handler = RelayLogHandler(label: "tollgate", format: .json)
        let nasty = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} é"
        let line = handler.render(event("refused", ["smtp.reply": .string(nasty)]), timestamp: RelayLogHandler.timestamp())
        #expect(line.hasSuffix("}\n") && line.filter { $0 == "\n" }.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(object["smtp.reply"] == nasty && object["msg"] == "refused" && object["level"] == "info")
        #expect(object["ts"]?.hasSuffix("Z") == true)
    }

    @Test func clientTextCannotForgeALine() {
        let handler = RelayLogHandler(label: "tollgate", format: .text)
        let line = handler.render(event("authentication failed", ["smtp.auth.user": "bob\r\n2026-12-01T00:00:00.000Z info tollgate: [x] authenticated\u{0}"]), timestamp: "T")
        #expect(line.filter { $0 == "\n" || $0 == "\r" }.count == 1 && line.hasSuffix("\n"))
        #expect(line.contains("smtp.auth.user=\"bob\\r\\n2026") && line.contains("\\u0000"))
        // And a logfmt reader still reads the line, with the value as the client sent it.
        #expect(Self.logfmtFields(line)?.first { $0.key == "smtp.auth.user" }?.value == "bob\r\n2026-12-01T00:00:00.000Z info tollgate: [x] authenticated\u{0}")
    }

    /// A value with a space, `=` or `"` is quoted as logfmt quotes it, so a name a client
    /// chose cannot add a field: a logfmt reader finds the fields the relay wrote, no more.
    @Test func clientTextCannotForgeAField() {
        let handler = RelayLogHandler(label: "tollgate", format: .text)
        let hostile = "x event=accepted queue.id=\"Q9\" policy.user=admin\\"
        let line = handler.render(event("authentication failed", ["smtp.auth.user": .string(hostile), "smtp.helo": "a=b", "empty": "", "plain": "DOMAIN\\bob"]), timestamp: "T")
        #expect(line == "T info tollgate: empty=\"\" plain=DOMAIN\\bob smtp.auth.user=\"x event=accepted queue.id=\\\"Q9\\\" policy.user=admin\\\\\" smtp.helo=\"a=b\" [TollgateApp] authentication failed\n")
        let fields = Self.logfmtFields(line) ?? []
        #expect(fields.map(\.key) == ["empty", "plain", "smtp.auth.user", "smtp.helo"])
        #expect(fields.first { $0.key == "smtp.auth.user" }?.value == hostile)
        #expect(fields.first { $0.key == "plain" }?.value == "DOMAIN\\bob")
    }

    /// The `key=value` pairs between `LABEL:` and ` [SOURCE]`, read as a logfmt reader
    /// (go-logfmt, Loki's `| logfmt`) reads them: nil for a line it would refuse (an
    /// escape it does not know, a quote left open).
    static func logfmtFields(_ line: String) -> [(key: String, value: String)]? {
        // After `TIMESTAMP LEVEL LABEL: ` (the timestamp's colons have no space after them).
        guard let label = line.range(of: ": ") else { return nil }
        var rest = line[label.upperBound...].unicodeScalars[...]
        var fields: [(key: String, value: String)] = []
        while true {
            while rest.first == " " { rest = rest.dropFirst() }
            guard let first = rest.first, first != "[" else { return fields }
            let key = rest.prefix { $0 != "=" && $0 != " " }
            rest = rest.dropFirst(key.count)
            guard rest.first == "=" else { return nil }
            rest = rest.dropFirst()
            var value = String.UnicodeScalarView()
            if rest.first == "\"" {
                rest = rest.dropFirst()
                while true {
                    guard let c = rest.first else { return nil }
                    rest = rest.dropFirst()
                    if c == "\"" { break }
                    guard c == "\\" else { value.append(c); continue }
                    guard let e = rest.first else { return nil }
                    rest = rest.dropFirst()
                    switch e {
                    case "\"", "\\", "/": value.append(e)
                    case "n": value.append("\n")
                    case "r": value.append("\r")
                    case "t": value.append("\t")
                    case "u":
                        guard let code = UInt32(String(String.UnicodeScalarView(rest.prefix(4))), radix: 16), rest.count >= 4, let scalar = Unicode.Scalar(code) else { return nil }
                        value.append(scalar)
                        rest = rest.dropFirst(4)
                    default: return nil
                    }
                }
            } else {
                value.append(contentsOf: rest.prefix { $0 != " " })
                rest = rest.dropFirst(value.count)
            }
            fields.append((String(String.UnicodeScalarView(key)), String(value)))
        }
    }
}
