import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// RELIABILITY E6: spool corruption found at start. A damaged entry is quarantined
/// and the rest delivered; a damaged database file stops the relay before it
/// accepts or delivers anything, with a message that names the file.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(5))) struct CorruptSpoolTests {
        /// A spool holding `count` messages (markers `e6-0`…), upstream down, the relay
        /// stopped and the WAL folded into `queue.sqlite`. Returns the relay, the queue ids
        /// and the database path.
        func filledSpool(count: Int, sinkPort: Int) throws -> (RelayProcess, [String], String) {
            let relay = try RelayProcess(rest: upstreamSection(port: sinkPort))
            try relay.start()
            var ids: [String] = []
            for n in 0..<count {
                let reply = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: crashMessage(marker: "e6-\(n)"))
                try #require(reply.code == 250, "\(reply)")
                ids.append(String(reply.text.split(separator: " ").last ?? ""))
            }
            relay.stop()
            let db = relay.directory.path + "/spool/queue.sqlite"
            try sql(db, "PRAGMA wal_checkpoint(TRUNCATE);")
            return (relay, ids, db)
        }

        @discardableResult
        func sql(_ db: String, _ statements: String) throws -> String {
            let result = try ChildProcess.run("sqlite3", [db, statements], timeout: 20)
            guard result.status == 0 else { throw TestFailure("sqlite3 \(statements): \(result.stderr)") }
            return result.stdout
        }

        /// Overwrites `bytes.count` bytes of `path` at `offset`.
        func overwrite(_ path: String, at offset: Int, with bytes: [UInt8]) throws {
            guard var content = TestFiles.read(path), offset + bytes.count <= content.count else { throw TestFailure("cannot read \(path)") }
            content.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
            try TestFiles.write(content, to: path)
        }

        @Test func damagedEntriesAreQuarantinedAndTheRestDelivered() throws {
            let sinkPort = freePort()
            let (relay, ids, db) = try filledSpool(count: 7, sinkPort: sinkPort)
            defer { relay.stop() }
            // 0: one byte of the content flipped in the file itself, behind SQLite's back.
            let file = try #require(TestFiles.read(db))
            let needle = Array("e6-0 line 1 ".utf8)
            let offset = try #require((0...(file.count - needle.count)).first { file[$0..<($0 + needle.count)].elementsEqual(needle) })
            try overwrite(db, at: offset, with: [UInt8(ascii: "E")])
            // 1: the content is missing; 2: the envelope is unreadable; 3: no recipients.
            // 4, 5: a message or recipient state this version does not know (it would never
            // be claimed). And content whose message row is gone (an orphan).
            try sql(db, """
                DELETE FROM bodies WHERE message_id = '\(ids[1])';
                UPDATE messages SET envelope = CAST('{"not": "an envelope"' AS BLOB) WHERE id = '\(ids[2])';
                DELETE FROM recipients WHERE message_id = '\(ids[3])';
                UPDATE messages SET state = 'frozen' WHERE id = '\(ids[4])';
                UPDATE recipients SET state = 'bounced-twice' WHERE message_id = '\(ids[5])';
                INSERT INTO bodies (message_id, content) VALUES ('ORPHAN', CAST('Subject: orphan' AS BLOB));
                INSERT INTO recipients (message_id, idx, address, state, attempts) VALUES ('GONE', 0, 'x@example.net', 'pending', 0);
                INSERT INTO recipients (message_id, idx, address, state, attempts) VALUES ('GONE', 1, 'y@example.net', 'pending', 0);
                """)
            let sink = try RawSMTPSink.start(port: sinkPort, directory: relay.directory.path + "/sink")
            defer { sink.stop() }
            let collector = SinkCollector(directory: sink.directory)
            try relay.start()
            #expect(waitUntil(timeout: 30) { collector.delivered().contains("e6-6") })
            #expect(waitUntil(timeout: 30) { (try? sql(db, "SELECT count(*) FROM quarantine;"))?.trimmingCharacters(in: .whitespacesAndNewlines) == "7" },
                    "quarantine: \((try? sql(db, "SELECT id, reason FROM quarantine;")) ?? "")")
            Thread.sleep(forTimeInterval: 2)
            let copies = collector.copies()
            #expect(copies.count == 1 && copies.allSatisfy { $0.intact && $0.marker == "e6-6" }, "delivered: \(copies.map { $0.marker ?? $0.file })")
            let reasons = try sql(db, "SELECT id || ' ' || reason FROM quarantine ORDER BY id;")
            #expect(reasons.contains("\(ids[0]) content checksum mismatch"), "\(reasons)")
            #expect(reasons.contains("\(ids[1]) content is missing"), "\(reasons)")
            #expect(reasons.contains("\(ids[2]) envelope cannot be decoded"), "\(reasons)")
            #expect(reasons.contains("\(ids[3]) no recipients"), "\(reasons)")
            #expect(reasons.contains("\(ids[4]) unknown message state"), "\(reasons)")
            #expect(reasons.contains("\(ids[5]) unknown recipient state"), "\(reasons)")
            // E6c: the orphaned content is kept aside, the orphaned recipient rows go.
            #expect(reasons.contains("ORPHAN content without its message"), "\(reasons)")
            #expect(try sql(db, "SELECT count(*) FROM bodies WHERE message_id = 'ORPHAN';").trimmingCharacters(in: .whitespacesAndNewlines) == "0")
            #expect(try sql(db, "SELECT count(*) FROM recipients WHERE message_id = 'GONE';").trimmingCharacters(in: .whitespacesAndNewlines) == "0")
            #expect(relay.log.contains("recipient rows without their message removed"), "\(relay.log.suffix(2000))")
            #expect(relay.process?.isRunning == true, "the relay died: \(relay.log.suffix(2000))")
            #expect(try relay.cli(["queue", "list", "--json"]).stdout.isEmpty)
            relay.directory.remove()
        }

        enum FileDamage: String, CaseIterable, Sendable {
            /// Cut after its first pages (a lost tail).
            case truncated
            /// Its first bytes overwritten (not a database any more).
            case header
            /// The page holding the messages table overwritten at its start.
            case tablePage
        }

        @Test(arguments: FileDamage.allCases) func damagedDatabaseStopsTheRelayBeforeItAcceptsAnything(damage: FileDamage) throws {
            let sinkPort = freePort()
            let (relay, _, db) = try filledSpool(count: 5, sinkPort: sinkPort)
            let pageSize = try #require(Int(try sql(db, "PRAGMA page_size;").trimmingCharacters(in: .whitespacesAndNewlines)))
            switch damage {
            case .truncated:
                guard truncate(db, off_t(pageSize * 3)) == 0 else { throw TestFailure("truncate \(db)") }
            case .header:
                try overwrite(db, at: 0, with: Array("this is no longer SQLite".utf8))
            case .tablePage:
                let root = try #require(Int(try sql(db, "SELECT rootpage FROM sqlite_master WHERE name = 'messages';").trimmingCharacters(in: .whitespacesAndNewlines)))
                try overwrite(db, at: (root - 1) * pageSize, with: [UInt8](repeating: 0xFF, count: 16))
            }
            let sink = try RawSMTPSink.start(port: sinkPort, directory: relay.directory.path + "/sink")
            defer { sink.stop() }
            let result = try ChildProcess.run(RelayProcess.binary, ["serve", "-c", relay.configPath], timeout: 30)
            #expect(result.status == 1, "\(damage): exit status \(result.status): \(result.stderr.suffix(1000))")
            #expect(result.stderr.contains(db), "\(damage): \(result.stderr.suffix(1000))")
            #expect(["damaged", "malformed", "not a database"].contains { result.stderr.contains($0) }, "\(damage): \(result.stderr.suffix(1000))")
            #expect(!isListening(port: relay.port))
            Thread.sleep(forTimeInterval: 1)
            #expect(sink.messages().isEmpty, "\(damage): a damaged spool delivered mail")
            relay.directory.remove()
        }
    }
}
