import NIOCore

/// Checksums that find torn or flipped content in the spool. Each row records which
/// one it carries (`checksum_kind`), so spools written by earlier versions still load.
package enum Checksum {
    /// Which function a row's checksum was made with.
    package enum Kind: Int {
        /// FNV-1a 64 over the header, then the content (spools before schema v3).
        case fnv1a = 0
        /// XXH64 of the content, seeded with the XXH64 of the header: 32 bytes a step.
        case xxh64 = 1
    }

    /// The checksum new rows carry.
    package static let current = Kind.xxh64

    package static func of(header: String, content: ByteBuffer, kind: Kind = current) -> Int64 {
        switch kind {
        case .fnv1a: return fnv1a(header: header, content: content)
        case .xxh64:
            var header = header
            let seed = header.withUTF8 { XXH64.hash(UnsafeRawBufferPointer($0), seed: 0) }
            return Int64(bitPattern: content.withUnsafeReadableBytes { XXH64.hash($0, seed: seed) })
        }
    }

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

/// XXH64 (Yann Collet's xxHash, 64-bit variant, as specified in its `doc/xxhash_spec.md`).
enum XXH64 {
    private static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    @inline(__always) private static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    @inline(__always) private static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }

    @inline(__always) private static func merge(_ acc: UInt64, _ value: UInt64) -> UInt64 {
        (acc ^ round(0, value)) &* p1 &+ p4
    }

    static func hash(_ raw: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        let n = raw.count
        var i = 0
        var h: UInt64
        if n >= 32 {
            var v1 = seed &+ p1 &+ p2
            var v2 = seed &+ p2
            var v3 = seed
            var v4 = seed &- p1
            while i + 32 <= n {
                v1 = round(v1, UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
                v2 = round(v2, UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)))
                v3 = round(v3, UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)))
                v4 = round(v4, UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)))
                i += 32
            }
            h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            h = merge(h, v1)
            h = merge(h, v2)
            h = merge(h, v3)
            h = merge(h, v4)
        } else {
            h = seed &+ p5
        }
        h = h &+ UInt64(n)
        while i + 8 <= n {
            h ^= round(0, UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            h = rotl(h, 27) &* p1 &+ p4
            i += 8
        }
        if i + 4 <= n {
            h ^= UInt64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt32.self))) &* p1
            h = rotl(h, 23) &* p2 &+ p3
            i += 4
        }
        while i < n {
            h ^= UInt64(raw[i]) &* p5
            h = rotl(h, 11) &* p1
            i += 1
        }
        h ^= h >> 33
        h = h &* p2
        h ^= h >> 29
        h = h &* p3
        h ^= h >> 32
        return h
    }
}
