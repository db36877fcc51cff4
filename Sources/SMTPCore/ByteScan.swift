import NIOCore

/// Word-at-a-time scans over message content: eight bytes per step instead of one,
/// for the loops every byte of every message goes through (framing, encoding).
enum ByteScan {
    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highs: UInt64 = 0x8080_8080_8080_8080

    /// The lanes of `word` equal to `byte` have their high bit set (the lowest set
    /// lane is exact; lanes above a match may be false positives).
    @inline(__always)
    static func lanes(_ word: UInt64, equalTo byte: UInt8) -> UInt64 {
        let x = word ^ (UInt64(byte) &* ones)
        return (x &- ones) & ~x & highs
    }

    /// The index of the first CR, LF or NUL in `raw[from..<raw.count]`, or `raw.count`;
    /// `high` collects the bytes' high bits on the way (8-bit content).
    @inline(__always)
    static func firstLineBreakOrNUL(_ raw: UnsafeRawBufferPointer, from: Int, high: inout UInt8) -> Int {
        var i = from
        let n = raw.count
        var highWord: UInt64 = 0
        while i + 8 <= n {
            let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let hits = lanes(word, equalTo: 13) | lanes(word, equalTo: 10) | lanes(word, equalTo: 0)
            if hits != 0 {
                let k = hits.trailingZeroBitCount >> 3
                // Only the bytes before the hit count as content here.
                highWord |= k == 0 ? 0 : word & (highs >> UInt64(64 - 8 * k))
                i += k
                high |= highWord == 0 ? 0 : 0x80
                return i
            }
            highWord |= word & highs
            i += 8
        }
        high |= highWord == 0 ? 0 : 0x80
        while i < n {
            let c = raw[i]
            if c == 13 || c == 10 || c == 0 { return i }
            high |= c
            i += 1
        }
        return n
    }

    /// Whether any byte has its high bit set, eight bytes a step.
    static func containsHighBit(_ raw: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        let n = raw.count
        var acc: UInt64 = 0
        while i + 8 <= n {
            acc |= raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            i += 8
        }
        var tail: UInt8 = 0
        while i < n {
            tail |= raw[i]
            i += 1
        }
        return acc & highs != 0 || tail & 0x80 != 0
    }
}

extension ByteBuffer {
    /// Whether the readable bytes include 8-bit ones (RFC 6152).
    public var containsEightBit: Bool {
        withUnsafeReadableBytes { ByteScan.containsHighBit($0) }
    }
}
