import FuzzSupport
import SMTPCore

// The AUTH decoders: strict base64 (RFC 4648), AUTH PLAIN (RFC 4616) and AUTH LOGIN
// fields. The input is used twice: as the text a client sent, and as the octets a
// client encoded. Oracles: no trap; decoding is the inverse of encoding; whatever
// decodes re-encodes to text of the same length; PLAIN accepts exactly what an
// independent model of RFC 4616 accepts (three NUL-separated UTF-8 fields, a
// non-empty authentication identity, an authorization identity empty or the same)
// and returns exactly its fields; a refusal is a 5xx.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSASL(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    let text = String(decoding: input, as: UTF8.self)

    // As text from the wire.
    if let decoded = Base64.decode(text) {
        check(Base64.encode(decoded).utf8.count == text.utf8.count, "\(text.debugDescription) decodes to \(decoded.count) octets")
        check(Base64.decode(Base64.encode(decoded)) == decoded, "decode(encode(decode(x))) != decode(x)")
    }
    do { _ = try SASL.decodePlain(text) } catch { checkRefusal(error) }
    do { _ = try SASL.decodeLoginField(text) } catch { checkRefusal(error) }

    // As octets a client encoded.
    let encoded = Base64.encode(input)
    check(Base64.decode(encoded) == input, "decode(encode(x)) != x")
    let fields = input.split(separator: 0, omittingEmptySubsequences: false)
    let strings = fields.map { String(validating: $0, as: UTF8.self) }
    let modelAccepts = fields.count == 3 && strings.allSatisfy { $0 != nil } && !fields[1].isEmpty && (fields[0].isEmpty || fields[0] == fields[1])
    do {
        let (user, password) = try SASL.decodePlain(encoded)
        check(modelAccepts, "PLAIN accepted what RFC 4616 refuses")
        check(user == strings[1] && password == strings[2], "PLAIN fields differ")
    } catch {
        check(!modelAccepts, "PLAIN refused valid \(input)")
        checkRefusal(error)
    }
    let login = try? SASL.decodeLoginField(encoded)
    check(login == String(validating: input, as: UTF8.self), "LOGIN field differs")
    return 0
}

func checkRefusal(_ error: SASL.Failure) {
    check(error.reply.code >= 500 && error.reply.code < 600, "refusal \(error.reply)")
}
