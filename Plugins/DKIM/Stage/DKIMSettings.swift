import DKIMKeys
import Foundation
import TollgatePolicy

/// One signing identity: domain, selector and key (the stage's default, or a
/// department's `dkim:` section).
public struct DKIMIdentity: Sendable {
    public var domain: String
    public var selector: String
    public var key: DKIMKey
    /// Where the key came from, for logs (`/etc/tollgate/keys/finance.pem`).
    public var keySource: String
}

/// The `dkim` stage's settings (SPEC §7):
///
/// ```yaml
/// - use: dkim
///   settings:
///     domain: example.com          # the default identity (optional when every
///     selector: mail2026           #   department has its own dkim: section)
///     key: keys/example.pem        # a PEM file (relative to this file) or inline PEM
///     headers: [From, To, Subject, Date, Message-ID]
///     canonicalization: relaxed/relaxed
///     unaligned: pass              # or refuse
/// ```
public struct DKIMSettings: Sendable {
    public var defaultIdentity: DKIMIdentity?
    public var headers: [String]
    public var header: DKIMCanonicalization
    public var body: DKIMCanonicalization
    /// What to do with a message whose From: domain no configured key aligns with.
    public var refuseUnaligned: Bool

    static let keys: Set<String> = ["domain", "selector", "key", "headers", "canonicalization", "unaligned"]

    /// Reads the stage's settings; every problem is located.
    public static func parse(_ settings: PolicySettings) -> (DKIMSettings?, [PolicyDiagnostic]) {
        var reader = PolicySettingsReader(settings)
        var diagnostics = settings.unknownKeys(allowed: keys)
        var identity: DKIMIdentity?
        if settings["domain"] != nil || settings["selector"] != nil || settings["key"] != nil {
            identity = Self.identity(&reader)
        }
        var headers = DKIMSigner.defaultHeaders
        if let listed = reader.locatedStrings("headers") {
            headers = []
            for (name, location) in listed {
                let lower = name.lowercased()
                if DKIMSigner.neverSigned.contains(lower) {
                    reader.fail(location, "'\(name)' is a trace header field, which every hop adds to; it is never signed")
                } else if lower.isEmpty || !lower.utf8.allSatisfy({ (33...126).contains($0) && $0 != UInt8(ascii: ":") }) {
                    reader.fail(location, "'\(name)' is not a header field name")
                } else if !headers.contains(lower) {
                    headers.append(lower)
                }
            }
            if !headers.contains("from") {
                // RFC 6376 §5.4: From must be signed.
                headers.insert("from", at: 0)
            }
        }
        var header = DKIMCanonicalization.relaxed
        var body = DKIMCanonicalization.relaxed
        if let text = reader.string("canonicalization") {
            let parts = text.lowercased().split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            let h = parts.first.flatMap(DKIMCanonicalization.init(rawValue:))
            let b: DKIMCanonicalization? = parts.count == 2 ? DKIMCanonicalization(rawValue: parts[1]) : (parts.count == 1 ? .simple : nil)
            if let h, let b {
                header = h
                body = b
            } else {
                reader.fail(reader.location("canonicalization"), "canonicalization is relaxed/relaxed, relaxed/simple, simple/relaxed or simple/simple, not '\(text)'")
            }
        }
        var refuse = false
        if let text = reader.string("unaligned") {
            switch text.lowercased() {
            case "pass": refuse = false
            case "refuse": refuse = true
            default: reader.fail(reader.location("unaligned"), "unaligned is pass (deliver unsigned, log and count) or refuse, not '\(text)'")
            }
        }
        diagnostics += reader.diagnostics
        guard diagnostics.isEmpty else { return (nil, diagnostics) }
        return (DKIMSettings(defaultIdentity: identity, headers: headers, header: header, body: body, refuseUnaligned: refuse), [])
    }

    /// A department's `dkim:` section: its own domain, selector and key.
    public static func parseDepartment(_ settings: PolicySettings, department: String) -> (DKIMIdentity?, [PolicyDiagnostic]) {
        var reader = PolicySettingsReader(settings)
        let unknown = settings.unknownKeys(allowed: ["domain", "selector", "key"])
        let identity = Self.identity(&reader)
        let diagnostics = unknown + reader.diagnostics
        return diagnostics.isEmpty ? (identity, []) : (nil, diagnostics)
    }

    /// `domain`, `selector` and `key`, all required together; the key is read now.
    static func identity(_ reader: inout PolicySettingsReader) -> DKIMIdentity? {
        let domain = reader.requiredString("domain").map { $0.lowercased().trimmingCharacters(in: .whitespaces) }
        let selector = reader.requiredString("selector").map { $0.trimmingCharacters(in: .whitespaces) }
        if let domain, !Self.isDomain(domain) { reader.fail(reader.location("domain"), "'\(domain)' is not a domain name") }
        if let selector, !Self.isDomain(selector) { reader.fail(reader.location("selector"), "'\(selector)' is not a selector (DNS labels)") }
        guard let keyText = reader.requiredString("key") else { return nil }
        let location = reader.location("key")
        let pem: String
        let source: String
        if keyText.contains("-----BEGIN") {
            pem = keyText
            source = "inline at \(location)"
        } else {
            let path = reader.resolvedPath(keyText, at: location)
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                reader.fail(location, "cannot read the key file \(path): \(PolicySettingsReader.whyUnreadable(path) ?? "it is not UTF-8 text")")
                return nil
            }
            pem = text
            source = path
        }
        let key: DKIMKey
        do {
            key = try DKIMKey(pem: pem)
        } catch {
            reader.fail(location, "the key \(source) is unusable: \(error)")
            return nil
        }
        guard let domain, let selector else { return nil }
        return DKIMIdentity(domain: domain, selector: selector, key: key, keySource: source)
    }

    /// Letters, digits, hyphens and underscores in dot-separated labels.
    static func isDomain(_ text: String) -> Bool {
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        return !text.isEmpty && labels.allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.utf8.allSatisfy { $0 == 45 || $0 == 95 || (48...57).contains($0) || (97...122).contains($0) || (65...90).contains($0) }
        }
    }
}
