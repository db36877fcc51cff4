import Foundation
import MilterStage
import PolicyTestSupport
import TestSupport
import Testing
import TollgatePolicy

/// The stage against real milters from Debian's packages, started by the test:
/// OpenDKIM signing (verified by dkimpy and OpenDKIM's own verifier) and verifying.
@Suite(.serialized) struct OpenDKIMMilterTests {
    static let message = Array((
        "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: milter test\r\n\tfolded subject line\r\n"
        + "Date: Wed, 02 Dec 2026 12:00:00 +0000\r\nMessage-ID: <m1@example.com>\r\n\r\nHello Bob,\r\n.a line with a dot\r\n"
    ).utf8)

    func stage(port: Int) -> MilterStage {
        MilterStage(settings: MilterSettings(server: .inet(host: "127.0.0.1", port: port), timeout: 10, connectTimeout: 2, hostname: "relay.example"))
    }

    @Test(.enabled(if: OpenDKIMMilter.isAvailable)) func openDKIMSignsAndTheSignatureVerifies() async throws {
        let milter = try OpenDKIMMilter(mode: "sv")
        defer { milter.stop() }
        let stage = stage(port: milter.port)
        let decisions = try await Session(message: Self.message).run(stage, sender: "alice@example.com")
        await stage.sessionClosed(sessionID: "s1")
        await stage.shutdown()
        let data = decisions.last!
        #expect(data.verdict == .continue, "\(data) \(milter.log)")
        #expect(data.changes.contains { if case .insertHeader(_, "DKIM-Signature", _) = $0 { return true }; return false }, "\(data.changes) \(milter.log)")
        let signed = try MessageContent(parsing: Self.message).applying(data.changes).bytes
        let text = String(decoding: signed, as: UTF8.self)
        #expect(text.contains("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=milt;"), "\(text)")
        if DKIMVerifier.isAvailable {
            let dkimpy = try DKIMVerifier.verify([signed], records: milter.records)
            #expect(dkimpy.passed, "\(dkimpy.output)")
        }
        let opendkim = try OpenDKIMVerifier.verify([signed], records: milter.records)
        #expect(opendkim.passed, "\(opendkim.output)")
    }

    @Test(.enabled(if: OpenDKIMMilter.isAvailable)) func openDKIMVerifiesASignedMessage() async throws {
        // sign with one OpenDKIM, verify with another in verify mode that knows the key
        let signer = try OpenDKIMMilter(mode: "sv")
        defer { signer.stop() }
        let s1 = stage(port: signer.port)
        let signedDecision = try await Session(message: Self.message).run(s1, sender: "alice@example.com").last!
        await s1.shutdown()
        let signed = try MessageContent(parsing: Self.message).applying(signedDecision.changes).bytes

        let verifier = try OpenDKIMMilter(mode: "v", keys: signer.records)
        defer { verifier.stop() }
        let s2 = stage(port: verifier.port)
        let verdict = try await Session(message: signed).run(s2, sender: "alice@example.com").last!
        await s2.shutdown()
        let results = verdict.changes.compactMap { change -> String? in
            switch change {
            case .insertHeader(_, "Authentication-Results", let v), .addHeader("Authentication-Results", let v): return v
            default: return nil
            }
        }
        #expect(results.count == 1, "\(verdict.changes) \(verifier.log)")
        #expect(results.first?.contains("dkim=pass") == true, "\(results) \(verifier.log)")
        #expect(results.first?.contains("test.example") == true, "\(results)")

        // a tampered body fails
        var tampered = signed
        tampered.replaceSubrange((tampered.count - 4)..<(tampered.count - 2), with: Array("X!".utf8))
        let s3 = stage(port: verifier.port)
        let bad = try await Session(message: tampered).run(s3, sender: "alice@example.com").last!
        await s3.shutdown()
        let badResults = bad.changes.compactMap { change -> String? in
            if case .insertHeader(_, "Authentication-Results", let v) = change { return v }
            if case .addHeader("Authentication-Results", let v) = change { return v }
            return nil
        }
        #expect(badResults.first?.contains("dkim=fail") == true, "\(badResults) \(verifier.log)")
    }
}

/// rspamd in milter mode (its `rspamd_proxy` worker with `milter = yes`, `self_scan = yes`).
@Suite(.serialized) struct RspamdMilterTests {
    @Test(.enabled(if: RspamdMilter.isAvailable), .timeLimit(.minutes(3))) func rspamdAddsItsHeadersAndRejectsByATestRule() async throws {
        let rspamd = try await RspamdMilter.start()
        defer { rspamd.stop() }
        let stage = MilterStage(settings: MilterSettings(server: .inet(host: "127.0.0.1", port: rspamd.port), timeout: 20, connectTimeout: 2, hostname: "relay.example"))
        defer { Task { await stage.shutdown() } }

        let ham = Array("From: alice@example.com\r\nTo: bob@example.net\r\nSubject: quarterly numbers\r\nDate: Wed, 02 Dec 2026 12:00:00 +0000\r\nMessage-ID: <r1@example.com>\r\n\r\nThe numbers are in.\r\n".utf8)
        let d = try await Session(id: "r1", message: ham).run(stage, sender: "alice@example.com").last!
        await stage.sessionClosed(sessionID: "r1")
        #expect(d.verdict == .continue, "\(d) \(rspamd.log.suffix(2000))")
        let added = d.changes.compactMap { change -> String? in
            switch change {
            case .addHeader(let n, _), .insertHeader(_, let n, _), .changeHeader(let n, _, _): return n
            default: return nil
            }
        }
        #expect(added.contains { $0.lowercased().hasPrefix("x-spam") || $0.lowercased().hasPrefix("x-rspamd") }, "\(d.changes)")

        let spam = Array("From: alice@example.com\r\nTo: bob@example.net\r\nSubject: please reject me now\r\nDate: Wed, 02 Dec 2026 12:00:00 +0000\r\nMessage-ID: <r2@example.com>\r\n\r\nBuy.\r\n".utf8)
        let r = try await Session(id: "r2", message: spam).run(stage, sender: "alice@example.com").last!
        await stage.sessionClosed(sessionID: "r2")
        guard case .reject(let reply) = r.verdict else {
            Issue.record("not rejected: \(r) \(rspamd.log.suffix(2000))")
            return
        }
        #expect(reply.code / 100 == 5)
        #expect(reply.text.contains("Rejected by the Tollgate test rule"), "\(reply)")
    }
}
