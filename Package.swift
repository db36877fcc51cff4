// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "Tollgate",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "tollgate", targets: ["tollgate"]),
        // BEGIN plugin products
        // The `ldap` policy plugin: libtollgate-ldap.so, loaded at run time, never linked into tollgate.
        .library(name: "tollgate-ldap", type: .dynamic, targets: ["LDAPPluginEntry"]),
        // The `sender-allowlist` policy plugin: libtollgate-sender-allowlist.so.
        .library(name: "tollgate-sender-allowlist", type: .dynamic, targets: ["SenderAllowlistPluginEntry"]),
        // The `rate-limit` policy plugin: libtollgate-rate-limit.so.
        .library(name: "tollgate-rate-limit", type: .dynamic, targets: ["RateLimitPluginEntry"]),
        // The `dkim` signing plugin: libtollgate-dkim.so.
        .library(name: "tollgate-dkim", type: .dynamic, targets: ["DKIMPluginEntry"]),
        // The `postfix-policy` plugin (Postfix SMTP access policy delegation client): libtollgate-postfix-policy.so.
        .library(name: "tollgate-postfix-policy", type: .dynamic, targets: ["PostfixPolicyPluginEntry"]),
        // The `milter` plugin (Sendmail milter protocol 6 client): libtollgate-milter.so.
        .library(name: "tollgate-milter", type: .dynamic, targets: ["MilterPluginEntry"]),
        // END plugin products
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "4.0.0"..<"5.0.0"),
        // The web console's HTTP server and its administrators' bcrypt hashes. No traits:
        // the defaults would build swift-configuration and full Foundation for nothing.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(path: "Plugins/TollgatePolicy"),
    ],
    targets: [
        // SMTP wire types, parsers, encoders, DATA/BDAT framing, SASL decoding. NIOCore only.
        .target(
            name: "SMTPCore",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        // Failed TLS handshakes in words, for both sides (SMTPServer and SMTPClient).
        .target(
            name: "TLSFailureText",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        // The receiving side: session state machine, NIO handler, listeners.
        .target(
            name: "SMTPServer",
            dependencies: [
                "SMTPCore", "CTLSShim", "TLSFailureText",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The sending side: SMTP client to upstream smarthosts.
        .target(
            name: "SMTPClient",
            dependencies: [
                "SMTPCore", "TLSFailureText",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The relay's counters and histograms, in Prometheus text format.
        .target(
            name: "TollgateMetrics",
            dependencies: [
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The configuration file as plain structs, read from YAML with located errors.
        .target(
            name: "TollgateConfiguration",
            dependencies: [
                "SMTPCore", "SMTPServer", "SMTPClient",
                .product(name: "Yams", package: "Yams"),
                .product(name: "TollgatePolicy", package: "TollgatePolicy"),
            ],
            swiftSettings: strict
        ),
        // Policy: the stage runner, plugin loader, department policies and decision traces.
        .target(
            name: "TollgatePipeline",
            dependencies: [
                "SMTPCore", "TollgateConfiguration", "TollgateMetrics",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "TollgatePolicy", package: "TollgatePolicy"),
            ],
            swiftSettings: strict
        ),
        // The queue: the Spool protocol and the embedded SQLite store.
        .target(
            name: "TollgateSpool",
            dependencies: [
                "TollgateConfiguration",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        // The shared store for a cluster: the queue in PostgreSQL (SPEC §6), claims with leases.
        .target(
            name: "TollgateSpoolPostgres",
            dependencies: [
                "TollgateSpool", "TollgateConfiguration",
                .product(name: "TollgatePolicy", package: "TollgatePolicy"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Delivery: the queue runner, transports (SMTP, directory), outcomes, bounces.
        .target(
            name: "TollgateDelivery",
            dependencies: [
                "SMTPCore", "SMTPClient", "TollgateConfiguration", "TollgateSpool", "TollgateMetrics",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The application: sessions wired to the pipeline and the spool, the server's
        // services, `check`, `explain`, the metrics endpoint.
        // The web console (SPEC §8): the queue, each message's trace and attempts, rates
        // and refusals, and signed-in administrators' actions. Server-rendered HTML.
        .target(
            name: "TollgateConsole",
            dependencies: [
                "TollgateSpool", "TollgateConfiguration",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // What swift-nio-ssl does not expose of its BoringSSL: the server's cipher preference,
        // a session's cipher, a certificate's names.
        .target(name: "CTLSShim", path: "Sources/CTLSShim"),
        .target(
            name: "TollgateApp",
            dependencies: [
                "SMTPCore", "SMTPServer", "SMTPClient", "CTLSShim",
                "TollgateConfiguration", "TollgatePipeline", "TollgateSpool", "TollgateSpoolPostgres", "TollgateDelivery", "TollgateMetrics",
                "TollgateConsole",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "TollgatePolicy", package: "TollgatePolicy"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tollgate",
            dependencies: [
                "TollgateApp", "TollgateConfiguration", "TollgateConsole", "TollgateSpool", "DKIMKeys",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict,
            // Installed (`make install`), libTollgatePolicy.so is in PREFIX/lib/tollgate/.
            linkerSettings: [.unsafeFlags(["-Xlinker", "-rpath", "-Xlinker", "$ORIGIN/../lib/tollgate"])]
        ),
        // BEGIN plugin targets
        // ldap plugin: OpenLDAP's C API (system library, pkg-config `ldap`).
        .systemLibrary(
            name: "CLDAP",
            path: "Plugins/CLDAP",
            pkgConfig: "ldap",
            providers: [.apt(["libldap2-dev"])]
        ),
        // ldap plugin: blocking libldap calls on the plugin's own threads, RFC 4515/4514 escaping.
        .target(
            name: "LDAPDirectory",
            dependencies: ["CLDAP"],
            path: "Plugins/LDAP/Directory",
            swiftSettings: strict
        ),
        // ldap plugin: the stage (settings, cache, throttle, facts). Tests link this target.
        .target(
            name: "LDAPStage",
            dependencies: ["LDAPDirectory", .product(name: "TollgatePolicy", package: "TollgatePolicy")],
            path: "Plugins/LDAP/Stage",
            swiftSettings: strict
        ),
        // ldap plugin: the two C entry points only, so tests can link LDAPStage without them.
        .target(
            name: "LDAPPluginEntry",
            dependencies: ["LDAPStage", .product(name: "TollgatePolicy", package: "TollgatePolicy")],
            path: "Plugins/LDAP/Entry",
            swiftSettings: strict
        ),
        // sender-allowlist plugin: the stage (patterns, CIDR, From: parsing). Tests link this target.
        .target(
            name: "SenderAllowlistStage",
            dependencies: [.product(name: "TollgatePolicy", package: "TollgatePolicy")],
            path: "Plugins/SenderAllowlist/Stage",
            swiftSettings: strict
        ),
        // sender-allowlist plugin: the two C entry points only.
        .target(
            name: "SenderAllowlistPluginEntry",
            dependencies: ["SenderAllowlistStage", .product(name: "TollgatePolicy", package: "TollgatePolicy")],
            path: "Plugins/SenderAllowlist/Entry",
            swiftSettings: strict
        ),
        // rate-limit plugin: the stage (rules, sliding-log counters). Tests link this target.
        .target(
            name: "RateLimitStage",
            dependencies: [.product(name: "TollgatePolicy", package: "TollgatePolicy")],
            path: "Plugins/RateLimit/Stage",
            swiftSettings: strict
        ),
        // rate-limit plugin: the two C entry points only.
        .target(
            name: "RateLimitPluginEntry",
            dependencies: ["RateLimitStage", .product(name: "TollgatePolicy", package: "TollgatePolicy")],
            path: "Plugins/RateLimit/Entry",
            swiftSettings: strict
        ),
        // dkim plugin: keys (PEM, generation, DNS records, signing primitives) on
        // swift-crypto; also linked by `tollgate dkim keygen`.
        .target(
            name: "DKIMKeys",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            path: "Plugins/DKIM/Keys",
            swiftSettings: strict
        ),
        // dkim plugin: canonicalisation, the signer, settings, the stage. Tests link this target.
        .target(
            name: "DKIMStage",
            dependencies: [
                "DKIMKeys",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "TollgatePolicy", package: "TollgatePolicy"),
            ],
            path: "Plugins/DKIM/Stage",
            swiftSettings: strict
        ),
        // dkim plugin: the two C entry points only.
        .target(
            name: "DKIMPluginEntry",
            dependencies: ["DKIMStage", .product(name: "TollgatePolicy", package: "TollgatePolicy")],
            path: "Plugins/DKIM/Entry",
            swiftSettings: strict
        ),
        // postfix-policy plugin: the protocol, the connection pool (blocking sockets on its own threads), the stage. Tests link this target.
        .target(
            name: "PostfixPolicyStage",
            dependencies: [.product(name: "TollgatePolicy", package: "TollgatePolicy")],
            path: "Plugins/PostfixPolicy/Stage",
            swiftSettings: strict
        ),
        // postfix-policy plugin: the two C entry points only.
        .target(
            name: "PostfixPolicyPluginEntry",
            dependencies: ["PostfixPolicyStage", .product(name: "TollgatePolicy", package: "TollgatePolicy")],
            path: "Plugins/PostfixPolicy/Entry",
            swiftSettings: strict
        ),
        // milter plugin: the protocol (packets, NIO codec), the per-session conversation,
        // settings, the stage. Links its own copy of NIO, as dkim links swift-crypto.
        .target(
            name: "MilterStage",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "TollgatePolicy", package: "TollgatePolicy"),
            ],
            path: "Plugins/Milter/Stage",
            swiftSettings: strict
        ),
        // milter plugin: the two C entry points only.
        .target(
            name: "MilterPluginEntry",
            dependencies: ["MilterStage", .product(name: "TollgatePolicy", package: "TollgatePolicy")],
            path: "Plugins/Milter/Entry",
            swiftSettings: strict
        ),
        // END plugin targets

        // bench/dkim-sign.sh: the signer's cost per message, RSA-2048 against Ed25519.
        .executableTarget(
            name: "tollgate-dkim-bench",
            dependencies: ["DKIMStage", "DKIMKeys", .product(name: "TollgatePolicy", package: "TollgatePolicy")],
            path: "bench/DKIMBench",
            swiftSettings: strict
        ),
        // Helpers for tests: child processes, certificates, sinks, free ports.
        .target(
            name: "TestSupport",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/TestSupport",
            exclude: ["Resources"],
            swiftSettings: strict
        ),
        // Helpers for the plugins' unit tests: the plugin test kit (re-exported) and the configuration reference.
        .target(
            name: "PolicyTestSupport",
            dependencies: [.product(name: "TollgatePolicyTestKit", package: "TollgatePolicy")],
            path: "Tests/PolicyTestSupport",
            swiftSettings: strict
        ),
        // Helpers for the spool and delivery tests: an in-memory spool with the stores'
        // claim semantics, a clock the test moves, message fixtures.
        .target(
            name: "SpoolTestSupport",
            dependencies: [
                "TollgateSpool", "TollgateDelivery", "TollgateConfiguration",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/SpoolTestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "SpoolTests",
            dependencies: [
                "TollgateSpool", "TollgateSpoolPostgres", "TollgateConfiguration", "SpoolTestSupport", "TestSupport",
                .product(name: "TollgatePolicy", package: "TollgatePolicy"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "DeliveryTests",
            dependencies: [
                "TollgateDelivery", "TollgateSpool", "TollgateConfiguration", "SMTPClient", "SpoolTestSupport", "TestSupport", "SMTPCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SMTPCoreTests",
            dependencies: ["SMTPCore", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SMTPServerTests",
            dependencies: [
                "SMTPServer", "SMTPCore", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Transcripts"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TollgateTests",
            dependencies: [
                "TollgateApp", "TollgateConfiguration", "TollgateConsole", "TollgateDelivery", "TollgatePipeline", "TollgateSpool", "TollgateSpoolPostgres", "SMTPCore", "SMTPServer", "TestSupport", "PolicyTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "TollgatePolicy", package: "TollgatePolicy"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SMTPClientTests",
            dependencies: [
                "SMTPClient", "SMTPCore", "TestSupport", "TLSFailureText",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // BEGIN plugin tests
        .testTarget(
            name: "LDAPStageTests",
            dependencies: [
                "LDAPStage", "LDAPDirectory", "TestSupport", "PolicyTestSupport",
                .product(name: "TollgatePolicy", package: "TollgatePolicy"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SenderAllowlistTests",
            dependencies: ["SenderAllowlistStage", "PolicyTestSupport", .product(name: "TollgatePolicy", package: "TollgatePolicy")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RateLimitTests",
            dependencies: ["RateLimitStage", "PolicyTestSupport", .product(name: "TollgatePolicy", package: "TollgatePolicy")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "DKIMTests",
            dependencies: [
                "DKIMStage", "DKIMKeys", "PolicyTestSupport", "TestSupport",
                .product(name: "TollgatePolicy", package: "TollgatePolicy"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PostfixPolicyTests",
            dependencies: [
                "PostfixPolicyStage", "PolicyTestSupport", "TestSupport",
                .product(name: "TollgatePolicy", package: "TollgatePolicy"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "MilterTests",
            dependencies: [
                "MilterStage", "PolicyTestSupport", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "TollgatePolicy", package: "TollgatePolicy"),
            ],
            swiftSettings: strict
        ),
        // END plugin tests
    ]
)

// BEGIN fuzz targets
// libFuzzer targets in Fuzz/ (`make fuzz`; README, "Fuzzing").
// They exist only when TOLLGATE_FUZZ is set, so `swift build` and `swift test` never see
// them; `make fuzz` builds them with `--sanitize=fuzzer --sanitize=address` in its own
// scratch path (.build-fuzz), which instruments the product modules they link.
if Context.environment["TOLLGATE_FUZZ"] != nil {
    let fuzzSettings: [SwiftSetting] = strict + [.unsafeFlags(["-parse-as-library"])]
    func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
        .executableTarget(name: name, dependencies: dependencies + ["FuzzSupport"], path: "Fuzz/\(name)", exclude: ["corpus", "dict"], swiftSettings: fuzzSettings)
    }
    let nioCore: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
    // Only what the targets link, so one `swift build` builds exactly them.
    let linked: Set = ["SMTPCore", "SMTPServer", "CTLSShim", "TLSFailureText", "SMTPClient", "TollgateConfiguration", "TollgateSpool", "LDAPDirectory", "CLDAP"]
    package.products = []
    package.targets = package.targets.filter { linked.contains($0.name) }
    package.targets += [
        // The property check and byte-level oracles the targets share.
        .target(name: "FuzzSupport", path: "Fuzz/Support", swiftSettings: strict),
        fuzzTarget("FuzzCommandParser", ["SMTPCore"]),
        fuzzTarget("FuzzAddressParser", ["SMTPCore"]),
        fuzzTarget("FuzzDataFramer", ["SMTPCore", nioCore]),
        fuzzTarget("FuzzBDATFramer", ["SMTPCore", nioCore]),
        fuzzTarget("FuzzSASL", ["SMTPCore"]),
        fuzzTarget("FuzzLDAPEscaping", ["LDAPDirectory"]),
        fuzzTarget("FuzzReplyParser", ["SMTPClient", "SMTPCore", nioCore]),
        fuzzTarget("FuzzConfiguration", ["TollgateConfiguration", .product(name: "TollgatePolicy", package: "TollgatePolicy")]),
        fuzzTarget("FuzzSpoolRecord", [
            "TollgateSpool", "TollgateConfiguration", nioCore,
            .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log"),
        ]),
        fuzzTarget("FuzzSession", [
            "SMTPServer", "SMTPCore", nioCore,
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
    ]
}
// END fuzz targets
