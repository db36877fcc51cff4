/// The body of a message at the `data` phase: the octets after the blank line that
/// ends the header block (RFC 5322 §2.1), canonical CRLF lines, no dot-stuffing.
///
/// The relay hands stages a view of its own buffer: reading it copies nothing.
public protocol MessageBody: Sendable {
    /// The body's length in octets.
    var count: Int { get }
    /// Calls `body` with the octets; the pointer is valid only inside the call.
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

/// A body held in an array: what ``MessageChange/replaceBody(_:)`` produces, and
/// what tests build messages from.
public struct BytesBody: MessageBody, Hashable {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    public var count: Int { bytes.count }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes(body)
    }
}

/// A message as the stages see it at the `data` phase: its header fields in order
/// and its body. A value; stages change it only through the ``MessageChange``s of
/// their ``PolicyDecision``, which the relay applies before the next stage runs, so
/// each stage sees the message as the stages before it left it.
///
/// Changing header fields leaves ``body`` as it is: no stage and no change copies the
/// body unless it replaces it.
public struct MessageContent: Sendable {
    public var fields: [HeaderField]
    public var body: any MessageBody
    /// Whether the header block is followed by the blank line (always, unless the
    /// message was only header fields with no body at all).
    public var hasBodySeparator: Bool

    public init(fields: [HeaderField], body: any MessageBody, hasBodySeparator: Bool = true) {
        self.fields = fields
        self.body = body
        self.hasBodySeparator = hasBodySeparator
    }

    /// Splits canonical content (CRLF lines) into fields and body. The body is a copy
    /// here; the relay uses its own non-copying body instead.
    public init(parsing bytes: [UInt8]) {
        let (fields, bodyStart) = Self.splitHeader(bytes)
        if let bodyStart {
            self.init(fields: fields, body: BytesBody(Array(bytes[bodyStart...])))
        } else {
            self.init(fields: fields, body: BytesBody([]), hasBodySeparator: false)
        }
    }

    /// The header fields of canonical content and where the body starts (after the
    /// blank line), or `nil` when there is no blank line. A continuation line before
    /// any field is kept as a field of its own (with no name).
    public static func splitHeader(_ bytes: UnsafeRawBufferPointer) -> (fields: [HeaderField], bodyStart: Int?) {
        var fields: [HeaderField] = []
        var fieldStart = 0
        var lineStart = 0
        var i = 0
        let n = bytes.count
        while i + 1 < n {
            guard bytes[i] == 13, bytes[i + 1] == 10 else {
                i += 1
                continue
            }
            if i == lineStart {
                // The blank line.
                if lineStart > fieldStart { fields.append(HeaderField(raw: Array(bytes[fieldStart..<(lineStart - 2)]))) }
                return (fields, i + 2)
            }
            let next = i + 2
            let continues = next < n && (bytes[next] == 32 || bytes[next] == 9)
            if !continues {
                fields.append(HeaderField(raw: Array(bytes[fieldStart..<i])))
                fieldStart = next
            }
            lineStart = next
            i = next
        }
        if fieldStart < n {
            // No blank line: the rest is the last field (without a CRLF, if the content lacks one).
            var end = n
            if end >= 2, bytes[end - 2] == 13, bytes[end - 1] == 10 { end -= 2 }
            if end > fieldStart { fields.append(HeaderField(raw: Array(bytes[fieldStart..<end]))) }
        }
        return (fields, nil)
    }

    public static func splitHeader(_ bytes: [UInt8]) -> (fields: [HeaderField], bodyStart: Int?) {
        bytes.withUnsafeBytes { splitHeader($0) }
    }

    /// The header fields, unfolded, as ``PolicyContext/headers`` has them.
    public var unfoldedHeaders: [(name: String, value: String)] {
        fields.filter { !$0.name.isEmpty }.map { ($0.name, $0.value) }
    }

    /// The first field called `name`, unfolded.
    public func header(_ name: String) -> String? {
        fields.first { $0.isNamed(name) }?.value
    }

    /// The header block as sent: each field with its CRLF, and the blank line.
    public var headerBlock: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(fields.reduce(2) { $0 + $1.raw.count + 2 })
        for field in fields {
            out += field.raw
            out += [13, 10]
        }
        if hasBodySeparator || body.count > 0 { out += [13, 10] }
        return out
    }

    /// The message's size in octets, as stored.
    public var size: Int {
        fields.reduce(0) { $0 + $1.raw.count + 2 } + (hasBodySeparator || body.count > 0 ? 2 : 0) + body.count
    }

    /// The whole message as one array (a copy: for tests and small messages).
    public var bytes: [UInt8] {
        var out = headerBlock
        body.withUnsafeBytes { out += $0 }
        return out
    }

    /// This message with `changes` applied in order. Indexes and occurrences refer to
    /// the fields as they stand when each change is applied.
    public func applying(_ changes: [MessageChange]) throws(MessageChangeError) -> MessageContent {
        var result = self
        for change in changes { try result.apply(change) }
        return result
    }

    public mutating func apply(_ change: MessageChange) throws(MessageChangeError) {
        switch change {
        case .addHeader(let name, let value):
            fields.append(try Self.field(name, value, change))
        case .insertHeader(let index, let name, let value):
            let field = try Self.field(name, value, change)
            fields.insert(field, at: max(0, min(index, fields.count)))
        case .changeHeader(let name, let occurrence, let value):
            let field = try Self.field(name, value, change)
            guard let at = position(of: name, occurrence: occurrence) else {
                // As milters' chgheader: changing a field that is not there adds it.
                fields.append(field)
                return
            }
            // The field keeps its name as written.
            fields[at] = HeaderField(name: fields[at].name, value: value)
        case .removeHeader(let name, let occurrence):
            if let at = position(of: name, occurrence: occurrence) { fields.remove(at: at) }
        case .replaceBody(let bytes):
            guard MessageChange.isCanonical(bytes, folding: false) else {
                throw MessageChangeError(change: change, problem: "the new body has a CR or LF outside CRLF, or a NUL")
            }
            body = BytesBody(bytes)
        }
    }

    /// The index of the `occurrence`-th (from 1) field called `name`.
    public func position(of name: String, occurrence: Int) -> Int? {
        guard occurrence >= 1 else { return nil }
        var seen = 0
        for (i, f) in fields.enumerated() where f.isNamed(name) {
            seen += 1
            if seen == occurrence { return i }
        }
        return nil
    }

    static func field(_ name: String, _ value: String, _ change: MessageChange) throws(MessageChangeError) -> HeaderField {
        guard !name.isEmpty, name.utf8.allSatisfy({ (33...126).contains($0) && $0 != UInt8(ascii: ":") }) else {
            throw MessageChangeError(change: change, problem: "'\(name)' is not a header field name (RFC 5322 ftext)")
        }
        guard MessageChange.isCanonical(Array(value.utf8), folding: true) else {
            throw MessageChangeError(change: change, problem: "the value of \(name) has a CR or LF that is not folding (CRLF then a space or tab), or a NUL")
        }
        return HeaderField(name: name, value: value)
    }
}

/// A change a stage asks for at the `data` phase (``PolicyDecision/changes``). The
/// relay applies a stage's changes in order, after the stage answers `continue` or
/// `accept`, records them in the decision trace, and stores the changed message.
/// Header values may be folded (`CRLF` followed by a space or tab); they must not
/// contain any other CR, LF or a NUL, or the stage fails (its `on_error`).
public enum MessageChange: Sendable, Hashable {
    /// Adds a field after the last one.
    case addHeader(name: String, value: String)
    /// Inserts a field before the field now at `index` (0: at the top; past the end: at the end).
    case insertHeader(index: Int, name: String, value: String)
    /// Replaces the value of the `occurrence`-th (from 1) field called `name` (its name
    /// stays as written); adds the field if there is none.
    case changeHeader(name: String, occurrence: Int, value: String)
    /// Removes the `occurrence`-th (from 1) field called `name`, if there is one.
    case removeHeader(name: String, occurrence: Int)
    /// Replaces the whole body (canonical CRLF lines, without dot-stuffing).
    case replaceBody([UInt8])

    /// How the change is written in the decision trace.
    public var summary: String {
        switch self {
        case .addHeader(let name, _): return "+\(name)"
        case .insertHeader(let index, let name, _): return "+\(name)@\(index)"
        case .changeHeader(let name, let occurrence, _): return "~\(name)[\(occurrence)]"
        case .removeHeader(let name, let occurrence): return "-\(name)[\(occurrence)]"
        case .replaceBody(let bytes): return "body=\(bytes.count)"
        }
    }

    /// CR and LF only as CRLF (and, with `folding`, each CRLF followed by SP or HTAB); no NUL.
    static func isCanonical(_ bytes: [UInt8], folding: Bool) -> Bool {
        var i = 0
        while i < bytes.count {
            switch bytes[i] {
            case 0, 10: return false
            case 13:
                guard i + 1 < bytes.count, bytes[i + 1] == 10 else { return false }
                if folding {
                    guard i + 2 < bytes.count, bytes[i + 2] == 32 || bytes[i + 2] == 9 else { return false }
                }
                i += 2
            default: i += 1
            }
        }
        return true
    }
}

/// A change that cannot be applied: the stage fails with this error.
public struct MessageChangeError: Error, Sendable, Hashable, CustomStringConvertible {
    public var change: MessageChange
    public var problem: String

    public init(change: MessageChange, problem: String) {
        self.change = change
        self.problem = problem
    }

    public var description: String { "cannot apply \(change.summary): \(problem)" }
}
