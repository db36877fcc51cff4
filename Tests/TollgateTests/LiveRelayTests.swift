import Testing

/// Every test that runs real `tollgate` processes and real peers. They run one at a
/// time: the relay, sinks and directories they start are real processes, and the
/// blocking socket clients they use would otherwise hold the test runner's
/// cooperative threads (two on this machine) away from the asynchronous suites.
/// `make test` runs them in a second `swift test` invocation of their own.
@Suite(.serialized) enum LiveRelayTests {}
