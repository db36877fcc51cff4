import Foundation

/// One transaction stored by ``RawSMTPSink``: the envelope, session facts and
/// the exact message bytes.
public struct RawSMTPTransaction: Sendable, Equatable {
    /// A recipient the sink refused, with the reply it gave.
    public struct RejectedRecipient: Sendable, Equatable, Decodable {
        public let address: String
        public let reply: String
    }

    /// The sequence number, "000001", … (also the files' base name).
    public let id: String
    /// The sink's connection number (`conn-<n>.log` holds its transcript).
    public let connection: Int
    /// The client's "address:port".
    public let peer: String
    /// "EHLO" or "HELO".
    public let heloCommand: String?
    /// The EHLO/HELO argument.
    public let helo: String?
    public let tls: Bool
    public let tlsVersion: String?
    public let tlsCipher: String?
    /// The server name the client sent in the TLS handshake (SNI).
    public let tlsServerName: String?
    /// The user that authenticated on this connection, if any.
    public let authUser: String?
    /// The reverse path without angle brackets ("" for `<>`).
    public let mailFrom: String
    /// MAIL parameters as sent (`SIZE=123`, `BODY=8BITMIME`, `SMTPUTF8`).
    public let mailParameters: [String]
    /// The accepted recipients without angle brackets.
    public let rcptTo: [String]
    /// RCPT parameters, one array per accepted recipient.
    public let rcptParameters: [[String]]
    public let rejectedRecipients: [RejectedRecipient]
    /// "DATA" or "BDAT".
    public let dataCommand: String
    /// The sizes of the BDAT chunks.
    public let bdatChunks: [Int]
    /// The last line of the reply after the final dot / BDAT LAST.
    public let dataReply: String
    /// Whether that reply was 2xx.
    public let accepted: Bool
    /// Commands of this connection (so far) sent before the previous reply
    /// although PIPELINING was not advertised, or that must end a pipelined
    /// group; "." means bytes right after the end of data.
    public let pipeliningViolations: [String]
    /// Bytes that followed STARTTLS in the same write (discarded by the sink).
    public let startTLSInjectedBytes: Int
    /// The message with dot-unstuffing undone (RFC 5321 §4.5.2), otherwise exactly as received.
    public let content: [UInt8]
    /// The bytes between the 354 reply and the final ".\r\n", before unstuffing
    /// (BDAT: the chunks, same as ``content``).
    public let raw: [UInt8]

    /// ``content`` as UTF-8 text.
    public var text: String { String(decoding: content, as: UTF8.self) }

    /// The value of header field `name` in ``content`` (first occurrence, unfolded), if any.
    public func headerValue(_ name: String) -> String? { MessageHeaders.value(name, in: content) }

    /// The value of MAIL parameter `name` (case-insensitive); "" for a parameter without value.
    public func mailParameter(_ name: String) -> String? {
        for parameter in mailParameters {
            let parts = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts[0].uppercased() == name.uppercased() { return parts.count > 1 ? String(parts[1]) : "" }
        }
        return nil
    }

    /// Whether ``raw`` has CR and LF only as CRLF pairs (RELIABILITY A4's oracle).
    public var rawIsCanonicalCRLF: Bool { Self.isCanonicalCRLF(raw) }

    /// Whether `bytes` contain CR and LF only as CRLF pairs.
    public static func isCanonicalCRLF(_ bytes: [UInt8]) -> Bool {
        var index = 0
        while index < bytes.count {
            switch bytes[index] {
            case 0x0D:
                guard index + 1 < bytes.count, bytes[index + 1] == 0x0A else { return false }
                index += 2
            case 0x0A:
                return false
            default:
                index += 1
            }
        }
        return true
    }

    /// Loads `<directory>/<id>.json`, `.eml` and `.raw`.
    init(directory: String, id: String) throws {
        guard let json = TestFiles.read(directory + "/\(id).json") else {
            throw TestSupportError(.notFound, "\(directory)/\(id).json")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let record = try decoder.decode(Record.self, from: Data(json))
        guard let content = TestFiles.read(directory + "/\(id).eml"), let raw = TestFiles.read(directory + "/\(id).raw") else {
            throw TestSupportError(.notFound, "\(directory)/\(id).eml or .raw")
        }
        self.id = record.id
        connection = record.connection
        peer = record.peer
        heloCommand = record.heloCommand
        helo = record.ehlo
        tls = record.tls
        tlsVersion = record.tlsVersion
        tlsCipher = record.tlsCipher
        tlsServerName = record.tlsSni
        authUser = record.authUser
        mailFrom = record.mailFrom
        mailParameters = record.mailParams
        rcptTo = record.rcptTo
        rcptParameters = record.rcptParams
        rejectedRecipients = record.rcptRejected
        dataCommand = record.dataCommand
        bdatChunks = record.bdatChunks
        dataReply = record.dataReply
        accepted = record.accepted
        pipeliningViolations = record.pipeliningViolations
        startTLSInjectedBytes = record.starttlsInjectedBytes
        self.content = content
        self.raw = raw
    }

    /// The JSON written by `raw_smtp_sink.py` (snake_case keys).
    private struct Record: Decodable {
        let id: String
        let connection: Int
        let peer: String
        let heloCommand: String?
        let ehlo: String?
        let tls: Bool
        let tlsVersion: String?
        let tlsCipher: String?
        let tlsSni: String?
        let authUser: String?
        let mailFrom: String
        let mailParams: [String]
        let rcptTo: [String]
        let rcptParams: [[String]]
        let rcptRejected: [RejectedRecipient]
        let dataCommand: String
        let bdatChunks: [Int]
        let dataReply: String
        let accepted: Bool
        let pipeliningViolations: [String]
        let starttlsInjectedBytes: Int
    }
}
