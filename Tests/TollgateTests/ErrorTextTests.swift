import Foundation
import Testing
import TollgateConfiguration
import TollgateDelivery
import NIOCore
import TestSupport

/// Errors an administrator sees are one readable sentence with the path (issue 10
/// item 7: no `Error Domain=NSCocoaErrorDomain Code=516 …` dumps).
@Suite struct ErrorTextTests {
    @Test func foundationFileErrorsNameThePathAndTheReason() throws {
        let dir = try TemporaryDirectory(label: "errors")
        defer { dir.remove() }
        let file = dir.path + "/not-a-folder"
        try "x".write(toFile: file, atomically: true, encoding: .utf8)
        do {
            try FileManager.default.createDirectory(atPath: file, withIntermediateDirectories: true)
            Issue.record("a folder over a file was created")
        } catch {
            let text = ErrorText.describe(error)
            #expect(text.hasPrefix(file + ": "), "\(text)")
            #expect(!text.contains("Domain=") && !text.contains("\n"), "\(text)")
        }
        do {
            _ = try String(contentsOfFile: dir.path + "/missing", encoding: .utf8)
        } catch {
            #expect(ErrorText.describe(error) == dir.path + "/missing: No such file or directory", "\(ErrorText.describe(error))")
        }
        #expect(ErrorText.describe(POSIXError(.EACCES)) == "Permission denied")
    }

    /// The directory upstream's failure, as `queue list` and the log show it.
    @Test func anOutboxThatCannotBeMadeSaysWhyInOneSentence() async throws {
        let dir = try TemporaryDirectory(label: "outbox-error")
        defer { dir.remove() }
        let outbox = dir.path + "/outbox"
        try "a file where the folder should be".write(toFile: outbox, atomically: true, encoding: .utf8)
        do {
            try OutboxWriter(directory: outbox).write(id: "Q1", sender: "a@example.com", recipients: ["b@example.net"], content: ByteBuffer(string: "x\r\n"))
            Issue.record("written over a file")
        } catch {
            let text = ErrorText.describe(error)
            #expect(text.hasPrefix("cannot create the outbox folder \(outbox) ("), "\(text)")
            #expect(!text.contains("Domain="), "\(text)")
        }
    }
}
