import DKIMStage
import Testing
import TollgatePolicy

/// RFC 6376 §3.4: the two canonicalisations, against the RFC's own example (§3.4.5)
/// and the edge cases of the body (empty, no final CRLF, trailing empty lines).
@Suite struct DKIMCanonicalizationTests {
    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test func theRFCExampleRelaxed() {
        let message = MessageContent(parsing: bytes("A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n"))
        #expect(message.fields.count == 2)
        let headers = message.fields.flatMap { DKIMCanonicalization.relaxed.header($0) }
        #expect(String(decoding: headers, as: UTF8.self) == "a:X\r\nb:Y Z\r\n")
        let body = message.body.withUnsafeBytes { Array($0) }
        #expect(String(decoding: DKIMCanonicalization.relaxed.body(body), as: UTF8.self) == " C\r\nD E\r\n")
    }

    @Test func theRFCExampleSimple() {
        let message = MessageContent(parsing: bytes("A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n"))
        let headers = message.fields.flatMap { DKIMCanonicalization.simple.header($0) }
        #expect(String(decoding: headers, as: UTF8.self) == "A: X\r\nB : Y\t\r\n\tZ  \r\n")
        let body = message.body.withUnsafeBytes { Array($0) }
        #expect(String(decoding: DKIMCanonicalization.simple.body(body), as: UTF8.self) == " C \r\nD \t E\r\n")
    }

    @Test func emptyBodiesAndMissingFinalCRLF() {
        #expect(DKIMCanonicalization.simple.body([]) == bytes("\r\n"))
        #expect(DKIMCanonicalization.relaxed.body([]) == [])
        #expect(DKIMCanonicalization.simple.body(bytes("\r\n\r\n")) == bytes("\r\n"))
        #expect(DKIMCanonicalization.relaxed.body(bytes(" \r\n\t\r\n")) == [])
        #expect(DKIMCanonicalization.simple.body(bytes("end")) == bytes("end\r\n"))
        #expect(DKIMCanonicalization.relaxed.body(bytes("a  b \t")) == bytes("a b\r\n"))
        // Empty lines inside the body stay; only trailing ones go.
        #expect(DKIMCanonicalization.relaxed.body(bytes("a\r\n\r\nb\r\n\r\n")) == bytes("a\r\n\r\nb\r\n"))
    }

    @Test func theBodyHashOfAnEmptyBodyIsTheRFCsValue() {
        // RFC 6376 §3.4.3/§3.4.4: sha256("\r\n") and sha256("").
        #expect(DKIMCanonicalization.simple.bodyHash(BytesBody([])).base64 == "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=")
        #expect(DKIMCanonicalization.relaxed.bodyHash(BytesBody([])).base64 == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
    }
}

extension Array where Element == UInt8 {
    var base64: String {
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var i = 0
        while i < count {
            let b0 = self[i], b1 = i + 1 < count ? self[i + 1] : 0, b2 = i + 2 < count ? self[i + 2] : 0
            out.append(table[Int(b0 >> 2)])
            out.append(table[Int((b0 & 3) << 4 | b1 >> 4)])
            out.append(i + 1 < count ? table[Int((b1 & 15) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(i + 2 < count ? table[Int(b2 & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
