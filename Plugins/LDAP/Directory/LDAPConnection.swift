import CLDAP

#if canImport(Glibc)
import Glibc
#endif

/// One libldap handle. Every call blocks: use it only on an ``LDAPWorkerPool``
/// thread, never on Swift's cooperative pool or an event loop. Not thread-safe by
/// design (one owner thread), although libldap 2.5 itself is.
final class LDAPConnection {
    private var handle: OpaquePointer?
    private let watch = LDAPSocketWatch()
    private let watchdog: LDAPWatchdog
    /// How long one blocking call may take before the watchdog cuts the socket:
    /// connect, TLS handshake and the operation, each bounded by the timeout, plus slack.
    private let callLimit: Double

    /// Opens a handle for `uri` (one of `configuration.servers`), sets LDAPv3, the
    /// timeouts and TLS options, and runs StartTLS if asked. No bind.
    init(uri: String, configuration: LDAPClientConfiguration, watchdog: LDAPWatchdog) throws(LDAPError) {
        self.watchdog = watchdog
        self.callLimit = configuration.timeout * 3 + 1
        var ld: OpaquePointer?
        let rc = ldap_initialize(&ld, uri)
        guard rc == LDAP_SUCCESS, let ld else {
            throw LDAPError(code: rc, operation: "connect", message: Self.text(rc))
        }
        handle = ld
        guard cldap_socket_watch_install(ld, watch.pointer) == LDAP_OPT_SUCCESS else {
            throw LDAPError(code: LDAP_PARAM_ERROR, operation: "connect", message: "cannot install connection callbacks")
        }

        var version: Int32 = LDAP_VERSION3
        var network = Self.timeval(configuration.timeout)
        var operation = Self.timeval(configuration.timeout)
        var demand: Int32 = LDAP_OPT_X_TLS_DEMAND
        var newContext: Int32 = 0
        try set(LDAP_OPT_PROTOCOL_VERSION, &version, "protocol version")
        try set(LDAP_OPT_NETWORK_TIMEOUT, &network, "network timeout")
        try set(LDAP_OPT_TIMEOUT, &operation, "timeout")
        guard ldap_set_option(ld, LDAP_OPT_REFERRALS, cldap_opt_off()) == LDAP_OPT_SUCCESS else {
            throw LDAPError(code: LDAP_PARAM_ERROR, operation: "connect", message: "cannot turn off referrals")
        }
        if uri.lowercased().hasPrefix("ldaps://") || configuration.startTLS {
            if let caFile = configuration.caFile {
                guard ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, caFile) == LDAP_OPT_SUCCESS else {
                    throw LDAPError(code: LDAP_PARAM_ERROR, operation: "tls", message: "cannot use CA file \(caFile)")
                }
            }
            try set(LDAP_OPT_X_TLS_REQUIRE_CERT, &demand, "certificate verification")
            // Per-handle TLS options take effect only in a new TLS context.
            try set(LDAP_OPT_X_TLS_NEWCTX, &newContext, "TLS context")
        }
        if configuration.startTLS {
            let rc = watchdog.guarded(watch, seconds: callLimit) { ldap_start_tls_s(ld, nil, nil) }
            guard rc == LDAP_SUCCESS else { throw error(rc, "starttls") }
        }
    }

    deinit { close() }

    /// Unbinds and frees the handle (closes the socket). Idempotent.
    func close() {
        if let handle {
            ldap_unbind_ext_s(handle, nil, nil)
            self.handle = nil
        }
    }

    /// A simple bind (RFC 4513 §5.1.3). Callers refuse empty passwords first.
    func simpleBind(dn: String, password: String, operation: String) throws(LDAPError) {
        guard let handle else { throw LDAPError(code: LDAP_SERVER_DOWN, operation: operation, message: "closed") }
        var bytes = Array(password.utf8)
        let rc = bytes.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var credential = berval()
            credential.bv_len = ber_len_t(buffer.count)
            credential.bv_val = UnsafeMutableRawPointer(buffer.baseAddress)?.assumingMemoryBound(to: CChar.self)
            return watchdog.guarded(watch, seconds: callLimit) {
                ldap_sasl_bind_s(handle, dn, cldap_sasl_simple(), &credential, nil, nil, nil)
            }
        }
        // Do not leave the password in a heap buffer longer than needed.
        for index in bytes.indices { bytes[index] = 0 }
        guard rc == LDAP_SUCCESS else { throw error(rc, operation) }
    }

    /// A subtree search returning at most `sizeLimit` entries with the requested
    /// attributes. Throws on any result but success and `sizeLimitExceeded`; in the
    /// latter case `truncated` is set.
    func search(
        base: String,
        filter: String,
        attributes: [String],
        sizeLimit: Int32,
        timeout: Double
    ) throws(LDAPError) -> (entries: [LDAPEntry], truncated: Bool) {
        guard let handle else { throw LDAPError(code: LDAP_SERVER_DOWN, operation: "search", message: "closed") }
        var cAttributes: [UnsafeMutablePointer<CChar>?] = attributes.map { strdup($0) }
        if attributes.isEmpty { cAttributes.append(strdup(LDAP_NO_ATTRS)) }
        cAttributes.append(nil)
        defer { for pointer in cAttributes { free(pointer) } }

        var limit = Self.timeval(timeout)
        var message: OpaquePointer?
        let rc = cAttributes.withUnsafeMutableBufferPointer { buffer in
            watchdog.guarded(watch, seconds: callLimit) {
                ldap_search_ext_s(
                    handle, base, cldap_scope_subtree(), filter, buffer.baseAddress, 0,
                    nil, nil, &limit, sizeLimit, &message
                )
            }
        }
        defer { if let message { ldap_msgfree(message) } }
        guard rc == LDAP_SUCCESS || rc == LDAP_SIZELIMIT_EXCEEDED else { throw error(rc, "search") }

        var entries: [LDAPEntry] = []
        var entry = message.flatMap { ldap_first_entry(handle, $0) }
        while let current = entry {
            var dn = ""
            if let cDN = ldap_get_dn(handle, current) {
                dn = String(cString: cDN)
                ldap_memfree(cDN)
            }
            var values: [String: [String]] = [:]
            for attribute in attributes {
                guard let list = ldap_get_values_len(handle, current, attribute) else { continue }
                var strings: [String] = []
                var index = 0
                while let value = list[index] {
                    let length = Int(value.pointee.bv_len)
                    if let base = value.pointee.bv_val, length > 0 {
                        let buffer = UnsafeRawBufferPointer(start: base, count: length)
                        strings.append(String(decoding: buffer, as: UTF8.self))
                    } else {
                        strings.append("")
                    }
                    index += 1
                }
                ldap_value_free_len(list)
                values[attribute.lowercased(), default: []].append(contentsOf: strings)
            }
            entries.append(LDAPEntry(dn: dn, attributes: values))
            entry = ldap_next_entry(handle, current)
        }
        return (entries, rc == LDAP_SIZELIMIT_EXCEEDED)
    }

    // MARK: - Helpers

    private func set(_ option: Int32, _ value: UnsafeRawPointer, _ what: String) throws(LDAPError) {
        guard ldap_set_option(handle, option, value) == LDAP_OPT_SUCCESS else {
            throw LDAPError(code: LDAP_PARAM_ERROR, operation: "connect", message: "cannot set \(what)")
        }
    }

    private func error(_ rc: Int32, _ operation: String) -> LDAPError {
        var message = Self.text(rc)
        if let handle {
            var diagnostic: UnsafeMutablePointer<CChar>?
            if ldap_get_option(handle, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diagnostic) == LDAP_OPT_SUCCESS,
                let diagnostic
            {
                let text = String(cString: diagnostic)
                ldap_memfree(diagnostic)
                if !text.isEmpty { message += ": " + text }
            }
        }
        return LDAPError(code: rc, operation: operation, message: message)
    }

    private static func text(_ rc: Int32) -> String {
        guard let text = ldap_err2string(rc) else { return "LDAP error \(rc)" }
        return String(cString: text)
    }

    private static func timeval(_ seconds: Double) -> Glibc.timeval {
        let whole = seconds.rounded(.down)
        return Glibc.timeval(tv_sec: Int(whole), tv_usec: Int((seconds - whole) * 1_000_000))
    }
}
