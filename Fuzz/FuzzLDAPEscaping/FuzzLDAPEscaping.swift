import FuzzSupport
import LDAPDirectory

// The LDAP plugin's escaping of untrusted text (RFC 4515 filters, RFC 4514 DNs),
// checked against independent models written here from the RFCs' ABNF, not from the
// escaper. The input is the raw value (a user name or an address, NUL included).
// Oracles:
// - `(&(objectClass=person)(uid=%u))` with the value substituted parses, under a
//   strict RFC 4515 model, as an AND of exactly two equality assertions, the second
//   on `uid` with exactly the raw value's octets (no wildcard, no extra filter);
// - `uid=<escaped>,ou=people,dc=example,dc=org` parses, under a strict RFC 4514 model,
//   as exactly four single-valued RDNs, the first `uid` with exactly the raw value;
// - `normalizedDN` never traps.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLDAPEscaping(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    let value = String(decoding: input, as: UTF8.self)
    let raw = Array(value.utf8)

    let filterText = LDAPEscaping.userFilter(template: "(&(objectClass=person)(uid=%u))", username: value)
    var filterParser = FilterModel(Array(filterText.utf8))
    let filter = filterParser.parseWhole()
    let expected = Filter.and([.equality("objectClass", Array("person".utf8)), .equality("uid", raw)])
    check(filter == expected, "filter \(filterText.debugDescription) parses as \(String(describing: filter))")

    let dn = "uid=" + LDAPEscaping.dnValue(value) + ",ou=people,dc=example,dc=org"
    let rdns = DNModel.parse(Array(dn.utf8))
    check(rdns?.count == 4 && rdns?[0].type == "uid" && rdns?[0].value == raw && rdns?[3].type == "dc",
          "DN \(dn.debugDescription) parses as \(String(describing: rdns))")

    _ = LDAPEscaping.normalizedDN(value)
    _ = LDAPEscaping.normalizedDN(dn)
    return 0
}

indirect enum Filter: Equatable {
    case and([Filter])
    case or([Filter])
    case not(Filter)
    case equality(String, [UInt8])
    /// Any other item (presence, substrings, ordering, approx, extensible): not what an escaped value may become.
    case other(String)
}

/// RFC 4515 §3:
///     filter = LPAREN filtercomp RPAREN
///     filtercomp = and / or / not / item
///     and = AMPERSAND filterlist; or = VERTBAR filterlist; not = EXCLAMATION filter
///     item = simple / present / substring / extensible
///     simple = attr filtertype assertionvalue; filtertype = EQUALS / approx / greaterorequal / lessorequal
///     present = attr EQUALS ASTERISK; substring = attr EQUALS [initial] any [final]
///     assertionvalue = valueencoding; valueencoding = 0*(normal / escaped)
///     normal = UTF1SUBSET / UTFMB  (UTF1SUBSET excludes NUL, "(", ")", "*", "\")
///     escaped = ESC HEX HEX
struct FilterModel {
    let s: [UInt8]
    var i = 0

    init(_ s: [UInt8]) { self.s = s }

    mutating func parseWhole() -> Filter? {
        guard let f = filter(), i == s.count else { return nil }
        return f
    }

    mutating func filter() -> Filter? {
        guard eat(UInt8(ascii: "(")) else { return nil }
        let result: Filter?
        switch peek {
        case UInt8(ascii: "&"): i += 1; result = list().map(Filter.and)
        case UInt8(ascii: "|"): i += 1; result = list().map(Filter.or)
        case UInt8(ascii: "!"): i += 1; result = filter().map(Filter.not)
        default: result = item()
        }
        guard result != nil, eat(UInt8(ascii: ")")) else { return nil }
        return result
    }

    mutating func list() -> [Filter]? {
        var filters: [Filter] = []
        while peek == UInt8(ascii: "(") {
            guard let f = filter() else { return nil }
            filters.append(f)
        }
        return filters.isEmpty ? nil : filters
    }

    mutating func item() -> Filter? {
        let start = i
        while let b = peek, isAttrChar(b) { i += 1 }
        guard i > start else { return nil }
        let attr = String(decoding: s[start..<i], as: UTF8.self)
        var kind = "="
        if let b = peek, b == UInt8(ascii: "~") || b == UInt8(ascii: ">") || b == UInt8(ascii: "<") {
            kind = String(UnicodeScalar(b)) + "="
            i += 1
        }
        guard eat(UInt8(ascii: "=")) else { return nil }
        var value: [UInt8] = []
        var wildcard = false
        while let b = peek, b != UInt8(ascii: ")") {
            switch b {
            case UInt8(ascii: "*"):
                wildcard = true
                i += 1
            case UInt8(ascii: "\\"):
                guard i + 2 < s.count, let hi = hex(s[i + 1]), let lo = hex(s[i + 2]) else { return nil }
                value.append(hi << 4 | lo)
                i += 3
            case 0, UInt8(ascii: "("):
                return nil
            default:
                value.append(b)
                i += 1
            }
        }
        if kind != "=" || wildcard { return .other(attr) }
        return .equality(attr, value)
    }

    var peek: UInt8? { i < s.count ? s[i] : nil }

    mutating func eat(_ b: UInt8) -> Bool {
        guard peek == b else { return false }
        i += 1
        return true
    }

    func isAttrChar(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == UInt8(ascii: "-") || b == UInt8(ascii: ";") || b == UInt8(ascii: ".")
    }
}

/// RFC 4514 §3:
///     distinguishedName = [ relativeDistinguishedName *( COMMA relativeDistinguishedName ) ]
///     relativeDistinguishedName = attributeTypeAndValue *( PLUS attributeTypeAndValue )
///     attributeValue = string / hexstring
///     string = [ ( leadchar / pair ) [ *( stringchar / pair ) ( trailchar / pair ) ] ]
///     leadchar = LUTF1 / UTFMB; LUTF1 excludes NUL, SPACE, '"', '#', '+', ',', ';', '<', '>', '\'
///     trailchar = TUTF1 / UTFMB; TUTF1 excludes NUL, SPACE, '"', '+', ',', ';', '<', '>', '\'
///     stringchar = SUTF1 / UTFMB; SUTF1 excludes NUL, '"', '+', ',', ';', '<', '>', '\'
///     pair = ESC ( ESC / special / hexpair ); special = escaped / SPACE / SHARP / EQUALS
///     escaped = DQUOTE / PLUS / COMMA / SEMI / LANGLE / RANGLE
/// A value given as a `#` hexstring is not what an escaped value may become: it fails here.
enum DNModel {
    struct RDN: Equatable, CustomStringConvertible {
        var type: String
        var value: [UInt8]
        var description: String { "\(type)=\(value)" }
    }

    static func parse(_ s: [UInt8]) -> [RDN]? {
        var rdns: [RDN] = []
        var i = 0
        while true {
            let typeStart = i
            while i < s.count, s[i] != UInt8(ascii: "=") {
                guard isKeyChar(s[i]) else { return nil }
                i += 1
            }
            guard i < s.count, i > typeStart else { return nil }
            let type = String(decoding: s[typeStart..<i], as: UTF8.self)
            i += 1
            var value: [UInt8] = []
            var first = true
            var lastWasEscapedOrPlain: (escaped: Bool, byte: UInt8)? = nil
            while i < s.count, s[i] != UInt8(ascii: ","), s[i] != UInt8(ascii: "+") {
                let b = s[i]
                if b == UInt8(ascii: "\\") {
                    guard i + 1 < s.count else { return nil }
                    let c = s[i + 1]
                    if i + 2 < s.count, let hi = hex(c), let lo = hex(s[i + 2]) {
                        value.append(hi << 4 | lo)
                        i += 3
                    } else if "\\\"+,;<> #=".utf8.contains(c) {
                        value.append(c)
                        i += 2
                    } else {
                        return nil
                    }
                    lastWasEscapedOrPlain = (true, value.last!)
                } else {
                    if b == 0 || "\"+,;<>\\".utf8.contains(b) { return nil }
                    if first, b == UInt8(ascii: " ") || b == UInt8(ascii: "#") { return nil }
                    value.append(b)
                    lastWasEscapedOrPlain = (false, b)
                    i += 1
                }
                first = false
            }
            if let last = lastWasEscapedOrPlain, !last.escaped, last.byte == UInt8(ascii: " ") { return nil }
            guard i == s.count || s[i] == UInt8(ascii: ",") else { return nil }  // multi-valued RDNs: not expected
            rdns.append(RDN(type: type, value: value))
            guard i < s.count else { return rdns }
            i += 1
        }
    }

    static func isKeyChar(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == UInt8(ascii: "-")
    }
}

func hex(_ b: UInt8) -> UInt8? {
    switch b {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - 48
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - 87
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - 55
    default: return nil
    }
}
