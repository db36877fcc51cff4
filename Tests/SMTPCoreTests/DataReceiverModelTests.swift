import NIOCore
import Testing

@testable import SMTPCore

/// The DATA receiver that copies whole paragraphs at once gives exactly what the one
/// that stopped at every line end gave: content, size, outcome, 8-bit flag, and where
/// the data ended, whatever the read boundaries.
@Suite struct DataReceiverModelTests {
    struct ReferenceReceiver {
        enum UnusedOutcome: Sendable, Hashable {
            case ok
            /// Larger than the limit: `552 5.3.4`.
            case tooLarge
            /// A stray CR or LF under ``BareNewlinePolicy/reject``: `550 5.5.2`.
            case bareNewline
            /// A fake end-of-data sequence was seen: `550 5.5.2`.
            case smuggling
            /// A NUL octet: `550 5.6.0`.
            case nul

            /// The reply for a refused message; `nil` for ``ok``.
            public var reply: SMTPReply? {
                switch self {
                case .ok: return nil
                case .tooLarge: return SMTPReply(552, "5.3.4", "Error: message file too big")
                case .bareNewline: return SMTPReply(550, "5.5.2", "Error: bare <CR> or <LF> received; use <CR><LF>")
                case .smuggling: return SMTPReply(550, "5.5.2", "Error: non-standard end-of-data sequence in message")
                case .nul: return SMTPReply(550, "5.6.0", "Error: NUL character in message")
                }
            }
        }

        enum State: Sendable {
            case lineStart(canonical: Bool)
            case text
            case cr
            case dot(canonical: Bool)
            case dotCR(canonical: Bool)
            case done
        }

        public let maxSize: Int
        public let bareNewline: BareNewlinePolicy
        private var state: State = .lineStart(canonical: true)
        /// The canonical, unstuffed content received so far (bounded by `maxSize`).
        public private(set) var content: ByteBuffer
        /// The size of the whole canonical content, counted even past `maxSize`.
        public private(set) var size: Int = 0
        public private(set) var outcome: DataReceiver.Outcome = .ok
        /// Whether any octet of the content has the high bit set (8-bit content), found
        /// while framing so that nothing scans the message again for it.
        public var eightBit: Bool { highBits & 0x80 != 0 }
        private var highBits: UInt8 = 0

        public init(maxSize: Int, bareNewline: BareNewlinePolicy, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
            self.maxSize = maxSize
            self.bareNewline = bareNewline
            self.content = allocator.buffer(capacity: min(maxSize, 16 * 1024))
        }

        public var isComplete: Bool {
            if case .done = state { return true }
            return false
        }

        /// Consumes bytes from `input` up to and including the end-of-data line. Returns
        /// `true` when the end was found; the bytes after it stay in `input` (pipelined commands).
        public mutating func consume(_ input: inout ByteBuffer) -> Bool {
            let (found, consumed) = input.withUnsafeReadableBytes { raw -> (Bool, Int) in
                var i = 0
                let n = raw.count
                while i < n {
                    let b = raw[i]
                    switch state {
                    case .text:
                        // Fast path: copy a run of ordinary bytes at once.
                        var high: UInt8 = 0
                        let j = ByteScan.firstLineBreakOrNUL(raw, from: i, high: &high)
                        highBits |= high
                        if j > i {
                            append(UnsafeRawBufferPointer(rebasing: raw[i..<j]))
                            i = j
                            continue
                        }
                        if b == 13 {
                            state = .cr
                        } else if b == 10 {
                            strayNewline()
                            appendCRLF()
                            state = .lineStart(canonical: false)
                        } else {  // NUL
                            mark(.nul)
                        }
                        i += 1
                    case .cr:
                        if b == 10 {
                            appendCRLF()
                            state = .lineStart(canonical: true)
                            i += 1
                        } else {
                            // A bare CR: a line ending of its own; reprocess `b` at line start.
                            strayNewline()
                            appendCRLF()
                            state = .lineStart(canonical: false)
                        }
                    case .lineStart(let canonical):
                        if b == UInt8(ascii: ".") {
                            state = .dot(canonical: canonical)
                            i += 1
                        } else {
                            state = .text
                        }
                    case .dot(let canonical):
                        if b == 13 {
                            state = .dotCR(canonical: canonical)
                            i += 1
                        } else if b == 10 {
                            // `.<LF>`: a fake terminator.
                            mark(.smuggling)
                            appendDot()
                            appendCRLF()
                            state = .lineStart(canonical: false)
                            i += 1
                        } else if b == UInt8(ascii: ".") {
                            // Dot-stuffing: the first dot goes, the second is content.
                            appendDot()
                            state = .text
                            i += 1
                        } else {
                            // RFC 5321 §4.5.2: "If the first character is a period and there
                            // are other characters on the line, the first character is deleted."
                            state = .text
                        }
                    case .dotCR(let canonical):
                        if b == 10 {
                            i += 1
                            if canonical {
                                state = .done
                                return (true, i)
                            }
                            // `<LF>.<CRLF>` or `<CR>.<CRLF>`: not an end.
                            mark(.smuggling)
                            appendDot()
                            appendCRLF()
                            state = .lineStart(canonical: true)
                        } else {
                            // `.<CR>` followed by anything but LF: a fake terminator.
                            mark(.smuggling)
                            appendDot()
                            appendCRLF()
                            state = .lineStart(canonical: false)
                        }
                    case .done:
                        return (true, i)
                    }
                }
                return (false, n)
            }
            input.moveReaderIndex(forwardBy: consumed)
            return found
        }

        private mutating func strayNewline() {
            if bareNewline == .reject { mark(.bareNewline) }
        }

        private mutating func mark(_ o: DataReceiver.Outcome) {
            // The first serious problem wins; size is reported over everything else.
            if outcome == .ok { outcome = o }
        }

        private mutating func appendDot() {
            var dot = UInt8(ascii: ".")
            withUnsafeBytes(of: &dot) { append($0) }
        }

        private mutating func appendCRLF() {
            size += 2
            if size <= maxSize {
                content.writeStaticString("\r\n")
            } else {
                outcome = .tooLarge
            }
        }

        private mutating func append(_ bytes: UnsafeRawBufferPointer) {
            size += bytes.count
            if size <= maxSize {
                content.writeBytes(bytes)
            } else {
                outcome = .tooLarge
            }
        }
    }

    static let endings: [[UInt8]] = [[13, 10, 46, 13, 10], [10, 46, 10], [13, 10, 46, 46, 13, 10], [13, 10, 46, 13, 13, 10], [0], [13], [10], [46, 46]]

    static func input(seed: UInt64, count: Int) -> [UInt8] {
        var bytes = ByteScanTests.input(seed: seed, count: count)
        // Sprinkle end-of-data look-alikes and a real end somewhere.
        var state = seed | 1
        for _ in 0..<4 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let at = Int(state >> 33) % max(1, bytes.count)
            bytes.insert(contentsOf: endings[Int(state >> 40) % endings.count], at: at)
        }
        return bytes + [13, 10, 46, 13, 10] + Array("QUIT\r\n".utf8)
    }

    @Test(arguments: [BareNewlinePolicy.normalize, .reject]) func matchesTheLineAtATimeModel(_ policy: BareNewlinePolicy) {
        for seed in 1...300 {
            let bytes = Self.input(seed: UInt64(seed), count: seed * 5)
            let step = [1, 3, 8, 61, 4096][seed % 5]
            var fast = DataReceiver(maxSize: 1000, bareNewline: policy)
            var model = ReferenceReceiver(maxSize: 1000, bareNewline: policy)
            var fastIn = ByteBuffer()
            var modelIn = ByteBuffer()
            var fastDone = false
            var modelDone = false
            var i = 0
            while i < bytes.count, !(fastDone && modelDone) {
                let piece = bytes[i..<min(i + step, bytes.count)]
                i += step
                if !fastDone {
                    fastIn.writeBytes(piece)
                    fastDone = fast.consume(&fastIn)
                }
                if !modelDone {
                    modelIn.writeBytes(piece)
                    modelDone = model.consume(&modelIn)
                }
            }
            #expect(fastDone == modelDone, "seed \(seed)")
            #expect(fast.size == model.size && fast.outcome == model.outcome && fast.eightBit == model.eightBit, "seed \(seed)")
            // Past the size limit the message is refused and what was kept of it differs
            // by where the copies were cut; below it, the content is the same.
            if model.outcome != .tooLarge {
                #expect(fast.content == model.content, "seed \(seed): \(model.outcome)")
            }
            #expect(fastIn.readableBytes == modelIn.readableBytes, "seed \(seed)")
        }
    }
}
