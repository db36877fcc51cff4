/// The one grammar for durations and sizes, shared by the relay's configuration and
/// every plugin's settings (SPEC §3), so `30s` or `10MB` mean the same everywhere.
public enum PolicyUnits {
    /// `250ms`, `30s`, `5m`, `1.5h`, `7d`, or `0`. A unit is required otherwise: a bare
    /// `10` could be seconds or minutes. Returns seconds; `nil` if malformed or negative.
    public static func duration(_ text: String) -> Double? {
        let trimmed = trim(text).lowercased()
        if trimmed == "0" { return 0 }
        let units: [(suffix: String, seconds: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for unit in units where trimmed.hasSuffix(unit.suffix) {
            let number = trimmed.dropLast(unit.suffix.count)
            guard !number.isEmpty, number.allSatisfy({ ($0.isASCII && $0.isNumber) || $0 == "." }),
                let value = Double(number), value.isFinite
            else { return nil }
            return value * unit.seconds
        }
        return nil
    }

    /// `25MB`, `512KB`, `1GB` (powers of 1024), `100B`, or plain bytes. `nil` if
    /// malformed or too large.
    public static func size(_ text: String) -> Int? {
        let trimmed = trim(text).uppercased()
        let units: [(String, Int)] = [("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1)]
        var number = Substring(trimmed)
        var multiplier = 1
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            number = trimmed.dropLast(suffix.count)
            multiplier = factor
            break
        }
        let digits = trim(String(number))
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(digits) else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }

    /// The shortest exact text for `seconds`: `1d`, `90m`, `45s`, `250ms`.
    public static func formatDuration(_ seconds: Double) -> String {
        for (unit, size) in [("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)]
        where seconds >= size && seconds.truncatingRemainder(dividingBy: size) == 0 {
            return "\(Int(seconds / size))\(unit)"
        }
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        return "\(seconds)s"
    }

    static func trim(_ s: String) -> String {
        var sub = Substring(s)
        while sub.first == " " || sub.first == "\t" { sub = sub.dropFirst() }
        while sub.last == " " || sub.last == "\t" { sub = sub.dropLast() }
        return String(sub)
    }
}

extension StringProtocol {
    /// The text without leading and trailing white space (settings values as written).
    public var trimmingSpaces: String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}
