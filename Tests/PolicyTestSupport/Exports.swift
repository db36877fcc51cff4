/// The plugins' unit tests use the test kit that third-party plugins use
/// (`TollgatePolicyTestKit`, a product of Plugins/TollgatePolicy), plus this
/// repository's configuration reference.
@_exported import TollgatePolicyTestKit
