// swift-tools-version:6.0
// The plugin API of Tollgate: the only module a policy plugin links against.
// It lives in its own package so that the relay and every plugin share one
// dynamic copy of it (see README, "Writing a plugin").
import PackageDescription

let package = Package(
    name: "TollgatePolicy",
    products: [
        .library(name: "TollgatePolicy", type: .dynamic, targets: ["TollgatePolicy"]),
        // For a plugin's tests only (never a plugin's library target): settings trees
        // with source locations, a policy host with a clock the test moves, sessions
        // that give each phase's context as the relay would, message fixtures.
        .library(name: "TollgatePolicyTestKit", targets: ["TollgatePolicyTestKit"]),
    ],
    targets: [
        .target(name: "TollgatePolicy", swiftSettings: [.swiftLanguageMode(.v6)]),
        .target(name: "TollgatePolicyTestKit", dependencies: ["TollgatePolicy"], swiftSettings: [.swiftLanguageMode(.v6)]),
    ]
)
