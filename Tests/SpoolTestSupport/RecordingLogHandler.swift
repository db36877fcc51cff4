import Logging
import NIOConcurrencyHelpers

/// Keeps every log message at `warning` or above, for tests that assert a path logs
/// no false alarm (or a real one).
public final class LogRecording: Sendable {
    private let lines = NIOLockedValueBox([String]())

    public init() {}

    public var warnings: [String] { lines.withLockedValue { $0 } }

    public var logger: Logger {
        Logger(label: "tollgate.test") { [self] _ in Handler(recording: self) }
    }

    struct Handler: LogHandler {
        let recording: LogRecording
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .warning

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            recording.lines.withLockedValue { $0.append("\(event.message)") }
        }
    }
}
