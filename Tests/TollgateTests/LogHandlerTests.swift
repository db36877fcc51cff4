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
        #expect(line.contains("smtp.auth.user=\"bob\\r\\n2026") && line.contains("\\x00"))
    }

    /// A value with a space, `=` or `"` is quoted as logfmt quotes it, so a name a client
    /// chose cannot add a field: a logfmt reader finds the fields the relay wrote, no more.
    @Test func clientTextCannotForgeAField() {
        let handler = RelayLogHandler(label: "tollgate", format: .text)
        let hostile = "x event=accepted queue.id=\"Q9\" policy.user=admin\\"
        let line = handler.render(event("authentication failed", ["smtp.auth.user": .string(hostile), "smtp.helo": "a=b", "empty": "", "plain": "DOMAIN\\bob"]), timestamp: "T")
        #expect(line == "T info tollgate: empty=\"\" plain=DOMAIN\\bob smtp.auth.user=\"x event=accepted queue.id=\\\"Q9\\\" policy.user=admin\\\\\" smtp.helo=\"a=b\" [TollgateApp] authentication failed\n")
        let fields = Self.logfmtFields(line)
        #expect(fields.map(\.key) == ["empty", "plain", "smtp.auth.user", "smtp.helo"])
        #expect(fields.first { $0.key == "smtp.auth.user" }?.value == hostile)
        #expect(fields.first { $0.key == "plain" }?.value == "DOMAIN\\bob")
    }

    /// The `key=value` pairs between `LABEL:` and ` [SOURCE]`, read as a logfmt reader
    /// (go-logfmt, Loki's `| logfmt`) reads them.
    static func logfmtFields(_ line: String) -> [(key: String, value: String)] {
        var rest = Substring(line.drop { $0 != ":" }.dropFirst())
        var fields: [(key: String, value: String)] = []
        while true {
            rest = rest.drop { $0 == " " }
            guard !rest.isEmpty, rest.first != "[" else { return fields }
            let key = rest.prefix { $0 != "=" }
            rest = rest.dropFirst(key.count + 1)
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                while let c = rest.first, c != "\"" {
                    rest = rest.dropFirst()
                    if c == "\\", let next = rest.first { value.append(next); rest = rest.dropFirst() } else { value.append(c) }
                }
                rest = rest.dropFirst()
            } else {
                value = String(rest.prefix { $0 != " " })
                rest = rest.dropFirst(value.count)
            }
            fields.append((String(key), value))
        }
    }
}
