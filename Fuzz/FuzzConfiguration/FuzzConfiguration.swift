import FuzzSupport
import TollgateConfiguration
import TollgatePolicy

// The YAML configuration loader (Yams + ConfigurationLoader) on arbitrary text.
// Oracles: no trap; a refused file has at least one diagnostic, and every diagnostic
// is located in this file at a line that exists (`file:line:column`, 1-based).

let file = "/nonexistent/fuzz/tollgate.yaml"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfiguration(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    let text = String(decoding: input, as: UTF8.self)
    do {
        _ = try ConfigurationLoader.parse(text, file: file)
    } catch {
        check(!error.diagnostics.isEmpty, "refused without a diagnostic")
        // libyaml counts CR, LF, CRLF, NEL, LS and PS as line breaks.
        let breaks = text.unicodeScalars.filter { ["\r", "\n", "\u{85}", "\u{2028}", "\u{2029}"].contains($0) }.count
        for d in error.diagnostics {
            check(d.location.file == file, "diagnostic in \(d.location.file): \(d)")
            check(d.location.line >= 1 && d.location.line <= breaks + 2 && d.location.column >= 1, "diagnostic at an impossible place: \(d)")
            check(!d.message.isEmpty, "empty diagnostic at \(d.location)")
        }
    }
    return 0
}
