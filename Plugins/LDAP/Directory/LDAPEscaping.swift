/// Escaping of untrusted text for LDAP search filters (RFC 4515) and
/// distinguished names (RFC 4514). Pure functions: no libldap involved.
public enum LDAPEscaping {
    /// Escapes `value` for use inside an RFC 4515 filter assertion value.
    ///
    /// RFC 4515 §3: the octets `*` (0x2A), `(` (0x28), `)` (0x29), `\` (0x5C) and
    /// NUL (0x00) must be written as a backslash and two hex digits. Every other
    /// octet (including UTF-8 of non-ASCII characters) is left as it is.
    public static func filterValue(_ value: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            switch byte {
            case 0x2A, 0x28, 0x29, 0x5C, 0x00:
                appendHexEscape(byte, to: &out)
            default:
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Escapes `value` for use as an attribute value in an RFC 4514 DN string.
    ///
    /// RFC 4514 §2.4: `"`, `+`, `,`, `;`, `<`, `>`, `\` are preceded by a backslash,
    /// as are a leading space or `#` and a trailing space; NUL becomes `\00`. `=` is
    /// escaped too, which §2.4 permits and some servers' parsers prefer.
    public static func dnValue(_ value: String) -> String {
        let bytes = Array(value.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for (index, byte) in bytes.enumerated() {
            switch byte {
            case 0x00:
                appendHexEscape(byte, to: &out)
            case UInt8(ascii: "\""), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"),
                UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "\\"), UInt8(ascii: "="):
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case UInt8(ascii: "#") where index == 0:
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case UInt8(ascii: " ") where index == 0 || index == bytes.count - 1:
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            default:
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Replaces every `%u` in `template` with the filter-escaped `username`.
    public static func userFilter(template: String, username: String) -> String {
        template.replacing("%u", with: filterValue(username))
    }

    /// A DN in a form for comparing two DNs: attribute types and values lower-cased,
    /// unescaped spaces around `,`, `+` and `=` removed. Not a full RFC 4517
    /// distinguishedNameMatch, but enough for group DNs written by people.
    public static func normalizedDN(_ dn: String) -> String {
        var rdns: [String] = []
        var current: [Character] = []
        var escaped = false
        func flush() {
            let text = String(current)
            let parts = splitUnescaped(text, on: "=", maxSplits: 1)
            if parts.count == 2 {
                rdns.append(trim(parts[0]).lowercased() + "=" + trim(parts[1]).lowercased())
            } else {
                rdns.append(trim(text).lowercased())
            }
            current.removeAll()
        }
        for ch in dn {
            if escaped {
                current.append(ch)
                escaped = false
            } else if ch == "\\" {
                current.append(ch)
                escaped = true
            } else if ch == "," || ch == ";" {
                flush()
            } else {
                current.append(ch)
            }
        }
        flush()
        return rdns.joined(separator: ",")
    }

    private static func splitUnescaped(_ text: String, on separator: Character, maxSplits: Int) -> [String] {
        var parts: [String] = []
        var current = ""
        var escaped = false
        for ch in text {
            if escaped {
                current.append(ch)
                escaped = false
            } else if ch == "\\" {
                current.append(ch)
                escaped = true
            } else if ch == separator && parts.count < maxSplits {
                parts.append(current)
                current = ""
            } else {
                current.append(ch)
            }
        }
        parts.append(current)
        return parts
    }

    /// Trims spaces, keeping a trailing space that is escaped (`\ `).
    private static func trim(_ text: String) -> String {
        var chars = Array(text)
        while let first = chars.first, first == " " { chars.removeFirst() }
        while chars.count >= 1, chars[chars.count - 1] == " " {
            if chars.count >= 2, chars[chars.count - 2] == "\\" { break }
            chars.removeLast()
        }
        return String(chars)
    }

    private static func appendHexEscape(_ byte: UInt8, to out: inout [UInt8]) {
        let digits = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\\"))
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0F)])
    }
}
