import NIOCore

/// The Sendmail milter protocol, version 6, as libmilter's `mfdef.h` numbers it.
/// A packet is a 4-octet big-endian length (of what follows), a command octet and its data.
public enum Milter {
    public static let version: UInt32 = 6

    /// Commands the MTA sends (SMFIC_*).
    public enum Command: UInt8, Sendable {
        case abort = 0x41        // 'A'
        case body = 0x42         // 'B'
        case connect = 0x43      // 'C'
        case macro = 0x44        // 'D'
        case endOfMessage = 0x45 // 'E'
        case helo = 0x48         // 'H'
        case header = 0x4C       // 'L'
        case mail = 0x4D         // 'M'
        case endOfHeader = 0x4E  // 'N'
        case optionNegotiation = 0x4F // 'O'
        case quit = 0x51         // 'Q'
        case rcpt = 0x52         // 'R'
        case data = 0x54         // 'T'
    }

    /// Replies and modification actions the milter sends (SMFIR_*).
    public enum Reply: UInt8, Sendable {
        case addRecipient = 0x2B       // '+'
        case deleteRecipient = 0x2D    // '-'
        case addRecipientWithArgs = 0x32 // '2'
        case shutdown = 0x34           // '4'
        case accept = 0x61             // 'a'
        case replaceBody = 0x62        // 'b'
        case `continue` = 0x63         // 'c'
        case discard = 0x64            // 'd'
        case changeFrom = 0x65         // 'e'
        case connectionFailure = 0x66  // 'f'
        case addHeader = 0x68          // 'h'
        case insertHeader = 0x69       // 'i'
        case setSymbolList = 0x6C      // 'l'
        case changeHeader = 0x6D       // 'm'
        case progress = 0x70           // 'p'
        case quarantine = 0x71         // 'q'
        case reject = 0x72             // 'r'
        case skip = 0x73               // 's'
        case tempfail = 0x74           // 't'
        case replyCode = 0x79          // 'y'
        case optionNegotiation = 0x4F  // 'O'
    }

    /// SMFIF_* action flags: what the MTA lets the milter do at end of message.
    public struct Actions: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let addHeaders = Actions(rawValue: 0x01)
        public static let changeBody = Actions(rawValue: 0x02)
        public static let addRecipients = Actions(rawValue: 0x04)
        public static let deleteRecipients = Actions(rawValue: 0x08)
        public static let changeHeaders = Actions(rawValue: 0x10)
        public static let quarantine = Actions(rawValue: 0x20)
        public static let changeFrom = Actions(rawValue: 0x40)
        public static let addRecipientsWithArgs = Actions(rawValue: 0x80)
        public static let setSymbolList = Actions(rawValue: 0x100)
        /// What Tollgate can apply (everything but ADDRCPT_PAR and SETSYMLIST).
        public static let offered: Actions = [.addHeaders, .changeBody, .addRecipients, .deleteRecipients, .changeHeaders, .quarantine, .changeFrom]
    }

    /// SMFIP_* protocol flags: steps the milter does not want (NO*) or will not answer (NR_*).
    public struct Steps: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let noConnect = Steps(rawValue: 0x1)
        public static let noHelo = Steps(rawValue: 0x2)
        public static let noMail = Steps(rawValue: 0x4)
        public static let noRcpt = Steps(rawValue: 0x8)
        public static let noBody = Steps(rawValue: 0x10)
        public static let noHeaders = Steps(rawValue: 0x20)
        public static let noEndOfHeader = Steps(rawValue: 0x40)
        public static let noReplyHeader = Steps(rawValue: 0x80)
        public static let noUnknown = Steps(rawValue: 0x100)
        public static let noData = Steps(rawValue: 0x200)
        public static let skip = Steps(rawValue: 0x400)
        public static let noReplyConnect = Steps(rawValue: 0x1000)
        public static let noReplyHelo = Steps(rawValue: 0x2000)
        public static let noReplyMail = Steps(rawValue: 0x4000)
        public static let noReplyRcpt = Steps(rawValue: 0x8000)
        public static let noReplyData = Steps(rawValue: 0x10000)
        public static let noReplyUnknown = Steps(rawValue: 0x20000)
        public static let noReplyEndOfHeader = Steps(rawValue: 0x40000)
        public static let noReplyBody = Steps(rawValue: 0x80000)
        /// What Tollgate honours: every NO* and NR_* step flag and SKIP (not RCPT_REJ,
        /// HDR_LEADSPC or the larger body chunks).
        public static let offered: Steps = [
            .noConnect, .noHelo, .noMail, .noRcpt, .noBody, .noHeaders, .noEndOfHeader, .noReplyHeader,
            .noUnknown, .noData, .skip, .noReplyConnect, .noReplyHelo, .noReplyMail, .noReplyRcpt,
            .noReplyData, .noReplyUnknown, .noReplyEndOfHeader, .noReplyBody,
        ]
    }

    /// The largest BODY chunk (MILTER_CHUNK_SIZE).
    public static let chunkSize = 65535
    /// The largest packet accepted from a milter (libmilter's own limit is 1 MiB + a bit
    /// with MDS_1M; a REPLBODY chunk is at most that).
    public static let maxPacket = 2 * 1024 * 1024
}

/// One packet: command (or reply) octet and data.
public struct MilterPacket: Sendable, Hashable {
    public var code: UInt8
    public var data: [UInt8]

    public init(code: UInt8, data: [UInt8] = []) {
        self.code = code
        self.data = data
    }

    public init(_ command: Milter.Command, _ data: [UInt8] = []) {
        self.init(code: command.rawValue, data: data)
    }

    /// The packet's code as a character, for messages (`'r'`).
    public var character: String { (32...126).contains(code) ? "'\(Character(UnicodeScalar(code)))'" : "0x\(String(code, radix: 16))" }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(data.count + 1))
        buffer.writeInteger(code)
        buffer.writeBytes(data)
    }

    /// NUL-terminated strings, in order (a milter's `name\0value\0`).
    public var strings: [String] {
        MilterPacket.strings(data[...])
    }

    static func strings(_ bytes: ArraySlice<UInt8>) -> [String] {
        var out: [String] = []
        var start = bytes.startIndex
        for i in bytes.indices where bytes[i] == 0 {
            out.append(String(decoding: bytes[start..<i], as: UTF8.self))
            start = i + 1
        }
        if start < bytes.endIndex { out.append(String(decoding: bytes[start...], as: UTF8.self)) }
        return out
    }

    /// A big-endian 32-bit integer at `offset` of the data.
    func uint32(at offset: Int) -> UInt32? {
        guard data.count >= offset + 4 else { return nil }
        return data[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }

    static func bytes(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }

    /// `s\0` for each string.
    static func nulTerminated(_ strings: [String]) -> [UInt8] {
        var out: [UInt8] = []
        for s in strings {
            out += s.utf8.filter { $0 != 0 }
            out.append(0)
        }
        return out
    }
}

/// Splits the byte stream into packets (length-prefixed); a length of zero or past
/// ``Milter/maxPacket`` is garbage and fails the connection.
public struct MilterPacketDecoder: ByteToMessageDecoder {
    public typealias InboundOut = MilterPacket

    public init() {}

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard length >= 1, length <= Milter.maxPacket else { throw MilterError.garbage("a packet length of \(length) octets") }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        let code: UInt8 = buffer.readInteger()!
        let data = buffer.readBytes(length: Int(length) - 1)!
        context.fireChannelRead(wrapInboundOut(MilterPacket(code: code, data: data)))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

/// Writes packets.
public struct MilterPacketEncoder: MessageToByteEncoder {
    public typealias OutboundIn = MilterPacket
    public init() {}
    public func encode(data: MilterPacket, out: inout ByteBuffer) throws {
        data.write(to: &out)
    }
}

/// Why a milter conversation failed; the stage throws it and the relay applies `on_error`.
public enum MilterError: Error, Sendable, CustomStringConvertible, Equatable {
    case connect(String)
    case timeout(String)
    case closed(String)
    case garbage(String)
    case notNegotiated(String)

    public var description: String {
        switch self {
        case .connect(let s): return "cannot connect to the milter: \(s)"
        case .timeout(let s): return "the milter did not answer in time (\(s))"
        case .closed(let s): return "the milter closed the connection (\(s))"
        case .garbage(let s): return "the milter does not speak the milter protocol: \(s)"
        case .notNegotiated(let s): return "the milter asked for an action it did not negotiate: \(s)"
        }
    }
}
