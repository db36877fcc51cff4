import NIOCore
import TollgateConfiguration

/// FNV-1a 64: a cheap checksum that finds torn or flipped content in the spool.
enum Checksum {
    private static let basis: UInt64 = 0xcbf2_9ce4_8422_2325
    private static let prime: UInt64 = 0x100_0000_01b3

    /// Over the trace header, then the content, as one stream (an empty header gives
    /// the checksum of the content alone, as spools from before the header had).
    static func fnv1a(header: String, content: ByteBuffer) -> Int64 {
        var hash = basis
        for b in header.utf8 { hash = (hash ^ UInt64(b)) &* prime }
        content.withUnsafeReadableBytes { raw in
            for b in raw { hash = (hash ^ UInt64(b)) &* prime }
        }
        return Int64(bitPattern: hash)
    }
}
