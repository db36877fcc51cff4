import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
import TollgateConfiguration
#endif

/// Makes queue ids that are never reused: the time in microseconds, strictly
/// increasing within the process, then random bits, in Crockford base 32 (no I, L, O, U).
///
/// With an `incarnation` (a number no other process of any node ever gets: the
/// PostgreSQL store takes it from a database sequence at start), the random bits make
/// way for that number, so ids are unique across a cluster by construction, whatever
/// the nodes' clocks do: two processes never share an incarnation, and one process
/// never repeats a stamp.
public final class QueueIDGenerator: Sendable {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
    private let state = NIOLockedValueBox<(last: UInt64, counter: UInt64)>((0, 0))
    private let suffix: [UInt8]?

    public init() {
        suffix = nil
    }

    /// Ids that end in `incarnation` (at least four base-32 digits) instead of random bits.
    public init(incarnation: UInt64) {
        var digits: [UInt8] = []
        var v = incarnation
        repeat {
            digits.append(Self.alphabet[Int(v & 31)])
            v >>= 5
        } while v > 0 || digits.count < 4
        suffix = digits.reversed()
    }

    public func next() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let micros = UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
        let stamp: UInt64 = state.withLockedValue { s in
            // Strictly increasing within the process, even if the clock stalls.
            let value = max(micros, s.last + 1)
            s.last = value
            return value
        }
        var out = [UInt8]()
        var v = stamp
        for _ in 0..<11 {
            out.append(Self.alphabet[Int(v & 31)])
            v >>= 5
        }
        out.reverse()
        if let suffix { return String(decoding: out + suffix, as: UTF8.self) }
        var r = UInt64.random(in: 0..<(1 << 20))
        for _ in 0..<4 {
            out.append(Self.alphabet[Int(r & 31)])
            r >>= 5
        }
        return String(decoding: out, as: UTF8.self)
    }
}
