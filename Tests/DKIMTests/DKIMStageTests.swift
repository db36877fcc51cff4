import DKIMKeys
import DKIMStage
import Foundation
import PolicyTestSupport
import TestSupport
import Testing
import TollgatePolicy

/// The stage signs; dkimpy (a real, independent verifier) checks every signature,
/// with the key records handed to it instead of DNS.
@Suite(.serialized) struct DKIMStageTests {
    /// Keys made once: RSA-2048 and Ed25519 for example.com, Ed25519 for two departments.
    static let keys = Keys()

    final class Keys: @unchecked Sendable {
        let folder: TemporaryDirectory
        let rsa: DKIMKey
        let ed25519: DKIMKey
        let finance: DKIMKey
        let sales: DKIMKey

        init() {
            folder = try! TemporaryDirectory(label: "dkimkeys")
            rsa = try! DKIMKey.generate("rsa", bits: 2048)
            ed25519 = try! DKIMKey.generate("ed25519")
            finance = try! DKIMKey.generate("rsa", bits: 1024)
            sales = try! DKIMKey.generate("ed25519")
            for (name, key) in [("rsa", rsa), ("ed25519", ed25519), ("finance", finance), ("sales", sales)] {
                try! key.pem.write(toFile: folder.path + "/\(name).pem", atomically: true, encoding: .utf8)
            }
        }

        func path(_ name: String) -> String { folder.path + "/\(name).pem" }

        /// The TXT records dkimpy is given.
        var records: [String: String] {
            [
                "rsa2026._domainkey.example.com": rsa.dnsRecordText,
                "ed2026._domainkey.example.com": ed25519.dnsRecordText,
                "fin._domainkey.finance.example": finance.dnsRecordText,
                "sal._domainkey.sales.example": sales.dnsRecordText,
            ]
        }
    }

    func makeStage(_ settings: Y, sections: [String: PolicySettings] = [:]) async throws -> (any PolicyStage, TestHost) {
        let host = TestHost(sections: sections)
        let factory = DKIMFactory()
        let problems = factory.validate(settings: settings.settings(), host: host)
        #expect(problems.isEmpty, "\(problems)")
        return (try await factory.makeStage(settings: settings.settings(), host: host), host)
    }

    func context(_ message: [UInt8], department: String? = nil) -> PolicyContext {
        let content = MessageContent(parsing: message)
        return PolicyContext(
            phase: .data, sessionID: "s1", listener: "relay", clientAddress: "127.0.0.1",
            headers: content.unfoldedHeaders, message: content, facts: SessionFacts(department: department)
        )
    }

    /// The message after the stage's changes, as bytes.
    func signed(_ stage: any PolicyStage, _ message: [UInt8], department: String? = nil) async throws -> (PolicyDecision, [UInt8]) {
        let ctx = context(message, department: department)
        let decision = try await stage.evaluate(ctx)
        return (decision, try ctx.message!.applying(decision.changes).bytes)
    }

    static let samples: [(String, String)] = [
        ("ascii", "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: Hello\r\nDate: Mon, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nHello Bob.\r\n"),
        ("8-bit UTF-8 body", "From: alice@example.com\r\nTo: bob@example.net\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße, Ünïcødé — 日本語\r\n"),
        ("long folded headers", "From: alice@example.com\r\nTo: a@example.net,\r\n b@example.net,\r\n\tc@example.net\r\nSubject: " + String(repeating: "long subject ", count: 20) + "\r\n   continued   with   spaces  \r\n\r\nBody  with   spaces \t \r\n\r\n\r\n"),
        ("dot lines", "From: alice@example.com\r\nSubject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\nend\r\n"),
        ("empty body", "From: alice@example.com\r\nSubject: empty\r\n\r\n"),
        ("no CRLF at the end", "From: alice@example.com\r\nSubject: no end\r\n\r\nlast line without CRLF"),
    ]

    @Test(arguments: ["relaxed/relaxed", "simple/simple", "relaxed/simple", "simple/relaxed"])
    func rsaAndEd25519SignaturesVerifyWithDkimpy(_ canonicalization: String) async throws {
        try #require(DKIMVerifier.isAvailable, "python3-dkim is not installed (scripts/install-deps.sh)")
        let keys = Self.keys
        var messages: [[UInt8]] = []
        for (selector, file) in [("rsa2026", "rsa"), ("ed2026", "ed25519")] {
            let (stage, _) = try await makeStage(["domain": "example.com", "selector": .scalar(selector), "key": .scalar(keys.path(file)), "canonicalization": .scalar(canonicalization)])
            for (name, text) in Self.samples {
                let (decision, bytes) = try await signed(stage, Array(text.utf8))
                #expect(decision.verdict == .continue, "\(name)")
                #expect(decision.changes.count == 1, "\(name)")
                #expect(decision.reason.contains("signed d=example.com s=\(selector)"))
                messages.append(bytes)
            }
        }
        let result = try DKIMVerifier.verify(messages, records: keys.records)
        #expect(result.passed, "\(result.output)")
        #expect(result.output.components(separatedBy: "PASS").count - 1 == messages.count, "\(result.output)")
        // And a second, independent verifier: OpenDKIM's library. Not on content without
        // a final CRLF: OpenDKIM's test mode gives no verdict for such a file with a
        // relaxed body, and the relay never stores one (it ends content with CRLF at
        // receipt; LiveRelayTests.DKIMLiveTests checks that case as delivered, with both).
        try #require(OpenDKIMVerifier.binary != nil, "opendkim is not installed (scripts/install-deps.sh)")
        let terminated = messages.filter { $0.suffix(2) == [13, 10] }
        #expect(terminated.count == messages.count - 2)
        let opendkim = try OpenDKIMVerifier.verify(terminated, records: keys.records)
        #expect(opendkim.passed, "\(opendkim.output)")
    }

    /// The plugin test kit's message fixtures through a kit session (the stage asked
    /// only at data, with the transaction's envelope, after the relay's other phases):
    /// every signature verifies with dkimpy. A message with two `From:` fields is
    /// passed unsigned: which of them a receiver would show cannot be known.
    @Test func everyTestKitMessageSignsAndVerifies() async throws {
        try #require(DKIMVerifier.isAvailable, "python3-dkim is not installed (scripts/install-deps.sh)")
        let (stage, _) = try await makeStage(["domain": "example.com", "selector": "ed2026", "key": .scalar(Self.keys.path("ed25519"))])
        var signed: [[UInt8]] = []
        for (name, message) in TestMessages.all + [("large", TestMessages.large(bytes: 200_000))] {
            var session = TestSession()
            let (steps, result) = try await session.run(stage, user: "alice", from: "alice@example.com", to: ["bob@example.net"], message: message)
            #expect(steps.map(\.phase) == [.data], "\(name)")
            if name == "twoFromFields" {
                #expect(steps.first?.decision.reason == "not signed: no key aligns with 2 From: fields" && result.bytes == message.bytes)
                continue
            }
            #expect(steps.first?.decision.reason.contains("signed d=example.com s=ed2026") == true, "\(name): \(steps.first?.decision.reason ?? "-")")
            signed.append(result.bytes)
        }
        let verified = try DKIMVerifier.verify(signed, records: Self.keys.records)
        #expect(verified.passed, "\(verified.output)")
        #expect(verified.output.components(separatedBy: "PASS").count - 1 == signed.count, "\(verified.output)")
    }

    @Test func fromIsOverSignedSoASecondFromBreaksTheSignature() async throws {
        try #require(DKIMVerifier.isAvailable, "python3-dkim is not installed (scripts/install-deps.sh)")
        let (stage, _) = try await makeStage(["domain": "example.com", "selector": "ed2026", "key": .scalar(Self.keys.path("ed25519"))])
        let (_, bytes) = try await signed(stage, Array(Self.samples[0].1.utf8))
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("h=from:from:to:subject:date:message-id"), "\(text.prefix(400))")
        #expect(!text.lowercased().contains("received"))
        let forged = Array(text.replacingOccurrences(of: "\r\n\r\nHello", with: "\r\nFrom: mallory@evil.example\r\n\r\nHello").utf8)
        let good = try DKIMVerifier.verify([bytes], records: Self.keys.records)
        let bad = try DKIMVerifier.verify([forged], records: Self.keys.records)
        #expect(good.passed, "\(good.output)")
        #expect(!bad.passed, "\(bad.output)")
    }

    @Test func eachDepartmentSignsWithItsOwnKey() async throws {
        try #require(DKIMVerifier.isAvailable, "python3-dkim is not installed (scripts/install-deps.sh)")
        let keys = Self.keys
        let finance = Y.map([("domain", "finance.example"), ("selector", "fin"), ("key", .scalar(keys.path("finance")))]).settings(file: "/etc/tollgate/policies/finance.yaml")
        let sales = Y.map([("domain", "sales.example"), ("selector", "sal"), ("key", .scalar(keys.path("sales")))]).settings(file: "/etc/tollgate/policies/sales.yaml")
        let (stage, host) = try await makeStage(["domain": "example.com", "selector": "rsa2026", "key": .scalar(keys.path("rsa"))], sections: ["finance": finance, "sales": sales])
        let (f, financeMessage) = try await signed(stage, Array("From: cfo@finance.example\r\nSubject: q4\r\n\r\nnumbers\r\n".utf8), department: "finance")
        let (s, salesMessage) = try await signed(stage, Array("From: rep@eu.sales.example\r\nSubject: offer\r\n\r\nbuy\r\n".utf8), department: "sales")
        // A finance user writing as the company domain: the default key aligns.
        let (d, defaultMessage) = try await signed(stage, Array("From: cfo@example.com\r\nSubject: all\r\n\r\nhi\r\n".utf8), department: "finance")
        #expect(f.reason.contains("d=finance.example s=fin a=rsa-sha256"))
        #expect(s.reason.contains("d=sales.example s=sal a=ed25519-sha256"))
        #expect(d.reason.contains("d=example.com s=rsa2026"))
        let result = try DKIMVerifier.verify([financeMessage, salesMessage, defaultMessage], records: keys.records)
        #expect(result.passed, "\(result.output)")
        if OpenDKIMVerifier.binary != nil {
            let opendkim = try OpenDKIMVerifier.verify([financeMessage, salesMessage, defaultMessage], records: keys.records)
            #expect(opendkim.passed, "\(opendkim.output)")
        }
        // The sales key does not sign finance's domain, nor finance's another department's.
        let (cross, _) = try await signed(stage, Array("From: cfo@finance.example\r\n\r\nx\r\n".utf8), department: "sales")
        #expect(cross.changes.isEmpty)
        #expect(cross.facts.tags["dkim"] == "unsigned")
        #expect(host.logs.contains { $0.contains("message not signed") && $0.contains("dkim.unaligned.count=1") })
    }

    @Test func anUnalignedMessageIsPassedUnsignedOrRefused() async throws {
        let key = Self.keys.path("ed25519")
        let (pass, _) = try await makeStage(["domain": "example.com", "selector": "ed2026", "key": .scalar(key)])
        let (refuse, _) = try await makeStage(["domain": "example.com", "selector": "ed2026", "key": .scalar(key), "unaligned": "refuse"])
        for text in ["From: x@other.example\r\n\r\nb\r\n", "From: a@example.com\r\nFrom: b@example.com\r\n\r\nb\r\n", "Subject: no from\r\n\r\nb\r\n", "From: a@notexample.com\r\n\r\nb\r\n"] {
            let (p, _) = try await signed(pass, Array(text.utf8))
            #expect(p.verdict == .continue && p.changes.isEmpty, "\(text)")
            let (r, _) = try await signed(refuse, Array(text.utf8))
            #expect(r.verdict.reply?.code == 550, "\(text)")
        }
        // A subdomain of the signing domain aligns (DMARC relaxed alignment).
        let (sub, _) = try await signed(refuse, Array("From: \"A, B\" <a@mail.Example.COM>\r\n\r\nb\r\n".utf8))
        #expect(sub.changes.count == 1)
    }

    @Test func badSettingsAreLocatedErrors() throws {
        let dir = try TemporaryDirectory(label: "dkimbad")
        try "not a key".write(toFile: dir.path + "/garbage.pem", atomically: true, encoding: .utf8)
        let short = try ChildProcess.run("openssl", ["genrsa", "-out", dir.path + "/short.pem", "768"], timeout: 60)
        #expect(short.status == 0, "\(short.stderr)")
        let factory = DKIMFactory()
        func problems(_ y: Y) -> [String] { factory.validate(settings: y.settings(file: dir.path + "/tollgate.yaml"), host: TestHost()).map(\.description) }

        let garbage = problems(["domain": "example.com", "selector": "s", "key": "garbage.pem"])
        #expect(garbage.count == 1 && garbage[0].hasPrefix("\(dir.path)/tollgate.yaml:12:") && garbage[0].contains("garbage.pem is unusable"), "\(garbage)")
        let weak = problems(["domain": "example.com", "selector": "s", "key": "short.pem"])
        #expect(weak.count == 1 && weak[0].contains("shorter than 1024 bits"), "\(weak)")
        let missing = problems(["domain": "example.com", "selector": "s", "key": "nope.pem"])
        #expect(missing.count == 1 && missing[0].contains("cannot read the key file \(dir.path)/nope.pem: it does not exist"), "\(missing)")
        let trace = problems(["domain": "example.com", "selector": "s", "key": .scalar(Self.keys.path("rsa")), "headers": ["From", "Received"], "canonicalization": "loose"])
        #expect(trace.contains { $0.contains("'Received' is a trace header field") }, "\(trace)")
        #expect(trace.contains { $0.contains("canonicalization is relaxed/relaxed") }, "\(trace)")
        let none = problems([:])
        #expect(none.count == 1 && none[0].contains("dkim needs a key"), "\(none)")
    }

    @Test func keygenRecordsArePublishable() throws {
        let rsa = Self.keys.rsa.dnsRecord(domain: "example.com", selector: "rsa2026")
        #expect(rsa.hasPrefix("rsa2026._domainkey.example.com. IN TXT ( \"v=DKIM1; k=rsa; p="))
        // Each quoted string at most 255 octets.
        for part in rsa.split(separator: "\"").enumerated() where part.offset % 2 == 1 { #expect(part.element.utf8.count <= 255) }
        #expect(Self.keys.ed25519.dnsRecordText.hasPrefix("v=DKIM1; k=ed25519; p="))
        // A written key reads back as the same key.
        let again = try DKIMKey(pem: Self.keys.ed25519.pem)
        #expect(again.publicKeyBase64 == Self.keys.ed25519.publicKeyBase64)
        let rsaAgain = try DKIMKey(pem: Self.keys.rsa.pem)
        #expect(rsaAgain.publicKeyBase64 == Self.keys.rsa.publicKeyBase64)
    }
}
