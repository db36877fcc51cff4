import TollgatePolicy

#if canImport(Glibc)
import Glibc
#endif

/// The plugin API's reader, with the few helpers only this plugin needs.
typealias SettingsReader = PolicySettingsReader

extension PolicySettingsReader {
    static func parseDuration(_ text: String) -> Double? { PolicyUnits.duration(text) }

    static func format(_ seconds: Double) -> String {
        if seconds >= 1, seconds == seconds.rounded() { return "\(Int(seconds))s" }
        return "\(Int((seconds * 1000).rounded()))ms"
    }
}


/// Small file helpers without Foundation.
enum FileAccess {
    /// The file's contents as UTF-8, or `nil` when it cannot be read.
    static func read(_ path: String, limit: Int = 1 << 20) -> String? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count <= limit {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        guard ferror(file) == 0, bytes.count <= limit else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}
