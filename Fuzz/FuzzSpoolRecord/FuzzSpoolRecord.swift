import Foundation
import FuzzSupport
import GRDB
import Logging
import NIOCore
import TollgateConfiguration

@testable import TollgateSpool

// The spool's record decoder (SQLiteSpool.load and list) on corrupt rows: a real
// SQLite spool in a temporary folder; each input stores one valid message, then damages
// its rows — any column of `messages`, `recipients` or `bodies` set to a value of any
// SQLite type (NULL, integer, real, text, blob), rows deleted — and reads it back.
// Oracles: no trap (SQLite's dynamic typing lets a damaged file hold text where an
// integer belongs); a message that loads has its id and at least one recipient; one
// that does not load is gone from the queue (moved to quarantine), so a second load
// and the listing agree.
//
// Input: a sequence of operations, each `column, type, length, payload[length]`.

let spoolDirectory = NSTemporaryDirectory() + "tollgate-fuzz-spool-\(getpid())"
let spool: SQLiteSpool = {
    atexit { try? FileManager.default.removeItem(atPath: spoolDirectory) }
    return try! SQLiteSpool(directory: spoolDirectory, node: "fuzz", logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
}()

let columns: [(table: String, column: String)] = [
    ("messages", "created"), ("messages", "sender"), ("messages", "envelope"), ("messages", "size"),
    ("messages", "checksum"), ("messages", "state"), ("messages", "next_attempt"), ("messages", "attempts"),
    ("messages", "last_error"), ("messages", "upstream"), ("messages", "user"), ("messages", "department"),
    ("messages", "bounce_now"), ("messages", "claimed_by"), ("messages", "claim_expires"), ("messages", "accepted_by"),
    ("messages", "received_header"), ("messages", "checksum_kind"),
    ("recipients", "idx"), ("recipients", "address"), ("recipients", "notify"), ("recipients", "orcpt"),
    ("recipients", "state"), ("recipients", "last_reply"), ("recipients", "attempts"),
    ("bodies", "content"),
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSpoolRecord(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    let id = spool.makeQueueID()
    blocking {
        var recipients = [SpoolRecipient(address: "a@example.com", notify: ["FAILURE"]), SpoolRecipient(address: "b@example.com")]
        recipients[1].originalRecipient = "rfc822;b@example.com"
        var envelope = SpoolEnvelope()
        envelope.tags = ["k": "v"]
        let message = SpoolMessage(
            id: id, createdAt: 1_700_000_000, sender: "s@example.com", recipients: recipients, envelope: envelope,
            receivedHeader: "Received: from x\r\n", content: ByteBuffer(string: "Subject: t\r\n\r\nbody\r\n"), upstream: "up"
        )
        try! await spool.insert(message, claim: nil)
    }
    var i = 0
    while i + 3 <= input.count {
        let (selector, type, length) = (Int(input[i]), input[i + 1], Int(input[i + 2]))
        let payload = Array(input[min(i + 3, input.count)..<min(i + 3 + length, input.count)])
        i += 3 + length
        damage(id, selector: selector, type: type, payload: payload)
    }
    let loaded = blocking { try? await spool.load(id) }
    if let loaded {
        check(loaded.id == id && !loaded.recipients.isEmpty, "loaded \(loaded.id) with \(loaded.recipients.count) recipients")
    } else {
        let again = blocking { try? await spool.load(id) }
        check(again == nil, "an entry that did not load loaded the second time")
    }
    let listed = blocking { (try? await spool.list())?.contains { $0.id == id } }
    if loaded == nil, let listed { check(!listed, "an entry that did not load is still listed") }
    try! spool.pool.write { db in
        try db.execute(sql: "DELETE FROM messages WHERE id = ?", arguments: [id])
        try db.execute(sql: "DELETE FROM quarantine")
    }
    return 0
}

/// One damage: a column set to a value of the chosen type, or rows deleted.
func damage(_ id: String, selector: Int, type: UInt8, payload: [UInt8]) {
    let value: DatabaseValue
    switch type % 5 {
    case 0: value = .null
    case 1: value = Int64(bitPattern: payload.prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }).databaseValue
    case 2: value = Double(bitPattern: payload.prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }).databaseValue
    case 3: value = String(decoding: payload, as: UTF8.self).databaseValue
    default: value = Data(payload).databaseValue
    }
    try? spool.pool.write { db in
        if selector < columns.count {
            let (table, column) = columns[selector]
            let key = table == "messages" ? "id" : "message_id"
            try db.execute(sql: "UPDATE \(table) SET \(column) = ? WHERE \(key) = ?", arguments: [value, id])
        } else if selector == 250 {
            try db.execute(sql: "DELETE FROM recipients WHERE message_id = ? AND idx = (SELECT MIN(idx) FROM recipients WHERE message_id = ?)", arguments: [id, id])
        } else if selector == 251 {
            try db.execute(sql: "DELETE FROM bodies WHERE message_id = ?", arguments: [id])
        }
    }
}

/// Runs async work to the end from the fuzzer's synchronous callback.
func blocking<T: Sendable>(_ work: @escaping @Sendable () async -> T) -> T {
    let done = DispatchSemaphore(value: 0)
    let result = ResultBox<T>()
    Task {
        result.value = await work()
        done.signal()
    }
    done.wait()
    return result.value!
}

final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}
