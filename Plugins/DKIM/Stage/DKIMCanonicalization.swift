import Crypto
import TollgatePolicy

/// The two canonicalisation algorithms of RFC 6376 §3.4, for header fields and for
/// the body.
public enum DKIMCanonicalization: String, Sendable, Hashable {
    case simple, relaxed

    // MARK: - Header fields (§3.4.1, §3.4.2)

    /// One header field canonicalised, with its CRLF unless `terminated` is false (the
    /// DKIM-Signature field itself is hashed without one, §3.7).
    public func header(_ field: HeaderField, terminated: Bool = true) -> [UInt8] {
        var out: [UInt8]
        switch self {
        case .simple:
            out = field.raw
        case .relaxed:
            out = []
            out.reserveCapacity(field.raw.count)
            let raw = field.raw
            let colon = raw.firstIndex(of: UInt8(ascii: ":")) ?? raw.endIndex
            // The name lower-cased, without the WSP before the colon.
            var name = raw[..<colon].map { (65...90).contains($0) ? $0 | 0x20 : $0 }
            while let last = name.last, last == 32 || last == 9 { name.removeLast() }
            out += name
            out.append(UInt8(ascii: ":"))
            // The value unfolded, WSP runs as one SP, no WSP at either end.
            var pendingSpace = false
            if colon < raw.endIndex {
                for b in raw[(colon + 1)...] {
                    switch b {
                    case 13, 10: continue
                    case 32, 9: pendingSpace = true
                    default:
                        if pendingSpace, out.count > name.count + 1 { out.append(32) }
                        pendingSpace = false
                        out.append(b)
                    }
                }
            }
        }
        if terminated { out += [13, 10] }
        return out
    }

    // MARK: - Body (§3.4.3, §3.4.4)

    /// The SHA-256 of the canonicalised body (the `bh=` value, §3.7), computed over
    /// the body in place, line by line.
    public func bodyHash(_ body: any MessageBody) -> [UInt8] {
        var hasher = SHA256()
        body.withUnsafeBytes { raw in
            var writer = BodyCanonicalizer(canonicalization: self)
            writer.feed(raw) { hasher.update(bufferPointer: $0) }
            writer.finish { hasher.update(bufferPointer: $0) }
        }
        return Array(hasher.finalize())
    }

    /// The canonicalised body itself (for tests).
    public func body(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        bytes.withUnsafeBytes { raw in
            var writer = BodyCanonicalizer(canonicalization: self)
            writer.feed(raw) { out += $0 }
            writer.finish { out += $0 }
        }
        return out
    }
}

/// Streams a body through canonicalisation: empty lines are held back until a
/// non-empty line follows (trailing empty lines are dropped), and with `relaxed`
/// WSP runs become one SP and WSP at a line's end goes.
struct BodyCanonicalizer {
    let canonicalization: DKIMCanonicalization
    /// Empty lines not yet written (they may be the trailing ones).
    var pendingEmptyLines = 0
    /// Whether anything but trailing empty lines was written.
    var wroteLine = false
    /// The current line so far (canonicalised), until its CRLF.
    var line: [UInt8] = []
    var pendingSpace = false
    var afterCR = false

    init(canonicalization: DKIMCanonicalization) {
        self.canonicalization = canonicalization
        line.reserveCapacity(1024)
    }

    mutating func feed(_ raw: UnsafeRawBufferPointer, _ emit: (UnsafeRawBufferPointer) -> Void) {
        for b in raw {
            if afterCR {
                afterCR = false
                if b == 10 {
                    endLine(emit)
                    continue
                }
                appendByte(13)
            }
            if b == 13 {
                afterCR = true
                continue
            }
            appendByte(b)
        }
    }

    private mutating func appendByte(_ b: UInt8) {
        if canonicalization == .relaxed {
            if b == 32 || b == 9 {
                pendingSpace = true
                return
            }
            if pendingSpace { line.append(32) }
            pendingSpace = false
        }
        line.append(b)
    }

    private mutating func endLine(_ emit: (UnsafeRawBufferPointer) -> Void) {
        // Relaxed: WSP at the end of the line is dropped (pendingSpace is forgotten).
        pendingSpace = false
        if line.isEmpty {
            pendingEmptyLines += 1
            return
        }
        for _ in 0..<pendingEmptyLines { Self.crlf.withUnsafeBytes(emit) }
        pendingEmptyLines = 0
        line.withUnsafeBytes(emit)
        Self.crlf.withUnsafeBytes(emit)
        line.removeAll(keepingCapacity: true)
        wroteLine = true
    }

    mutating func finish(_ emit: (UnsafeRawBufferPointer) -> Void) {
        if afterCR {
            afterCR = false
            appendByte(13)
        }
        // A last line without CRLF gets one.
        if !line.isEmpty { endLine(emit) }
        pendingSpace = false
        // Simple: an empty body is one CRLF (§3.4.3); relaxed: it stays empty (§3.4.4).
        if !wroteLine, canonicalization == .simple { Self.crlf.withUnsafeBytes(emit) }
    }

    static let crlf: [UInt8] = [13, 10]
}
