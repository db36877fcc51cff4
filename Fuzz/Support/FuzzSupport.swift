/// What the fuzz targets share: the property check and the byte-level oracles.

/// Traps with the property's description, which libFuzzer reports as a crash.
public func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("property violated: \(message())") }
}

/// Canonical CRLF text: CR only before LF, LF only after CR, no NUL.
public func isCanonical(_ bytes: [UInt8]) -> Bool {
    for (i, b) in bytes.enumerated() {
        if b == 0 { return false }
        if b == 13, i + 1 == bytes.count || bytes[i + 1] != 10 { return false }
        if b == 10, i == 0 || bytes[i - 1] != 13 { return false }
    }
    return true
}

/// The fuzzer's input as an array.
public func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
}
