// swift-tools-version:6.0
// A policy plugin written as a separate package by a "third party", against the
// TollgatePolicy API only. The tests build it and load it through the relay's loader.
import PackageDescription

let package = Package(
    name: "DomainBlock",
    products: [
        .library(name: "tollgate-domain-block", type: .dynamic, targets: ["DomainBlock"])
    ],
    dependencies: [
        .package(path: "../../../Plugins/TollgatePolicy")
    ],
    targets: [
        .target(
            name: "DomainBlock",
            dependencies: [.product(name: "TollgatePolicy", package: "TollgatePolicy")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The plugin's own tests, on Tollgate's test kit (never linked into the library).
        .testTarget(
            name: "DomainBlockTests",
            dependencies: [
                "DomainBlock",
                .product(name: "TollgatePolicy", package: "TollgatePolicy"),
                .product(name: "TollgatePolicyTestKit", package: "TollgatePolicy"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
