/// Extracts the mailbox addresses of an address-list header such as `From:`
/// (RFC 5322 §3.4): `Name <addr>`, bare `addr`, comma-separated lists, quoted
/// display names (`"Doe, Jane" <jane@x>`), comments (`(…)`, nested), groups
/// (`Team: a@x, b@x;`) and obsolete source routes (`<@relay:addr>`).
///
/// Returns the addresses as written (case preserved), in order. Text that holds no
/// address yields an empty list; the caller decides what that means.
enum HeaderAddresses {
    static func parse(_ value: String) -> [String] {
        var addresses: [String] = []
        // The current mailbox's text outside brackets and comments, and its <…> part.
        var plain = ""
        var angle: String?
        var inAngle = false
        var inQuotes = false
        var commentDepth = 0
        var escaped = false

        func finish() {
            let candidate = (angle ?? plain).trimmingSpaces
            var address = Substring(candidate)
            // Obsolete route: @a,@b:user@host
            if address.hasPrefix("@"), let colon = address.firstIndex(of: ":") {
                address = address[address.index(after: colon)...]
            }
            let trimmed = String(address).trimmingSpaces
            if !trimmed.isEmpty { addresses.append(trimmed) }
            plain = ""
            angle = nil
        }

        for character in value {
            if escaped {
                escaped = false
                if commentDepth == 0 {
                    if inAngle { angle?.append(character) } else { plain.append(character) }
                }
                continue
            }
            if character == "\\" && (inQuotes || commentDepth > 0) {
                escaped = true
                if commentDepth == 0 {
                    if inAngle { angle?.append(character) } else { plain.append(character) }
                }
                continue
            }
            if commentDepth > 0 {
                if character == "(" { commentDepth += 1 } else if character == ")" { commentDepth -= 1 }
                continue
            }
            if inQuotes {
                if character == "\"" { inQuotes = false }
                if inAngle { angle?.append(character) } else { plain.append(character) }
                continue
            }
            switch character {
            case "\"":
                inQuotes = true
                if inAngle { angle?.append(character) } else { plain.append(character) }
            case "(":
                commentDepth = 1
            case "<" where !inAngle:
                inAngle = true
                angle = ""
            case ">" where inAngle:
                inAngle = false
            case "," where !inAngle:
                finish()
            case ":" where !inAngle:
                // A group's display name ends here; its members follow.
                plain = ""
            case ";" where !inAngle:
                finish()
            default:
                if inAngle { angle?.append(character) } else { plain.append(character) }
            }
        }
        finish()
        // A display name without an address (`Jane Doe`) is not an address.
        return addresses.filter { $0.contains("@") || !$0.contains(" ") }
    }
}
