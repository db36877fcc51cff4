import TollgatePolicy

/// One subject of limits: a key's value (e.g. user `alice`) under a window length.
public struct CounterKey: Sendable, Hashable, CustomStringConvertible {
    public var key: RateLimitKey
    public var value: String
    public var window: Double

    public var description: String { "\(key.rawValue) \(value) per \(RateLimitFormat.duration(window))" }
}

/// Amounts of accepted mail.
public struct Usage: Sendable, Hashable {
    public var messages = 0
    public var recipients = 0
    public var bytes = 0

    public init(messages: Int = 0, recipients: Int = 0, bytes: Int = 0) {
        self.messages = messages
        self.recipients = recipients
        self.bytes = bytes
    }

    public subscript(measure: RateLimitMeasure) -> Int {
        switch measure {
        case .messages: return messages
        case .recipients: return recipients
        case .bytes: return bytes
        }
    }

    static func + (a: Usage, b: Usage) -> Usage {
        Usage(
            messages: a.messages &+ b.messages, recipients: a.recipients &+ b.recipients, bytes: a.bytes &+ b.bytes
        )
    }
}

extension CounterKey {
    /// The relay counter (``PolicyHost/counters``) this key's `measure` is kept in:
    /// `rate-limit/KEY/MEASURE/VALUE` over the window.
    func counter(_ measure: RateLimitMeasure) -> CounterID {
        CounterID(name: "rate-limit/\(key.rawValue)/\(measure.rawValue)/\(value)", window: window)
    }
}
