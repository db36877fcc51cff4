import Foundation
import TestSupport
import Testing

/// What a new administrator meets first at the command line: `--version`, usage
/// errors, an empty queue, `check` with several problems or no file at all.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(2))) struct CommandLineLiveTests {
        static func tollgate(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            try ChildProcess.run(RelayProcess.binary, args, timeout: 30)
        }

        @Test func versionAndUsageErrors() throws {
            let version = try Self.tollgate(["--version"])
            #expect(version.status == 0)
            #expect(version.stdout.hasPrefix("tollgate "), "\(version.stdout)")
            #expect(version.stdout.contains("plugin ABI "))
            #expect(try Self.tollgate(["version"]).stdout == version.stdout)
            // A bare `tollgate`, an unknown command, a missing argument: usage errors, 2.
            let bare = try Self.tollgate([])
            #expect(bare.status == 2)
            #expect(bare.stderr.contains("USAGE"), "\(bare.stderr)")
            #expect(try Self.tollgate(["frobnicate"]).status == 2)
            #expect(try Self.tollgate(["queue", "show"]).status == 2)
            #expect(try Self.tollgate(["explain", "--from", "a@b.example"]).status == 2)
        }

        @Test func anEmptyQueueSaysSo() throws {
            let relay = try RelayProcess(rest: "upstreams:\n  - name: out\n    directory: outbox\n")
            let list = try relay.cli(["queue", "list"])
            #expect(list.status == 0)
            #expect(list.stdout == "the queue is empty\n", "\(list.stdout)")
            #expect(try relay.cli(["queue", "list", "--state", "held"]).stdout == "no queued message matches\n")
            #expect(try relay.cli(["queue", "list", "--upstream", "out"]).stdout == "no queued message matches\n")
            #expect(try relay.cli(["queue", "list", "--json"]).stdout == "")
        }

        /// Relay-level and plugin errors in one pass, each once, located.
        @Test func checkReportsEveryProblemOnce() throws {
            let dir = try TemporaryDirectory()
            let file = dir.path + "/t.yaml"
            try """
                hostname: relay.test
                listeners:
                  - name: a
                    address: 127.0.0.1:99999
                upstreams:
                  - name: u
                    directory: out
                limits:
                  max_recipients: 10
                stages:
                  - use: rate-limit
                    settings:
                      limits:
                        - { key: nobody, messages: 3, per: 1h }
                  - use: no-such-plugin
                """.write(toFile: file, atomically: true, encoding: .utf8)
            let check = try Self.tollgate(["check", "-c", file])
            #expect(check.status == 1)
            let lines = check.stderr.split(separator: "\n").map(String.init)
            #expect(lines.count(where: { $0.hasPrefix("\(file):4:14: listener address must be host:port") }) == 1, "\(check.stderr)")
            #expect(!check.stderr.contains("needs an address"), "\(check.stderr)")
            #expect(lines.contains { $0.hasPrefix("\(file):9:19: limits.max_recipients must be at least 100") }, "\(check.stderr)")
            #expect(lines.contains { $0.hasPrefix("\(file):15:5: plugin 'no-such-plugin' not found") }, "\(check.stderr)")
            #expect(lines.contains { $0.hasPrefix("\(file):14:") && $0.contains("nobody") }, "the rate-limit plugin's error is missing: \(check.stderr)")
            #expect(Set(lines).count == lines.count, "a problem reported twice: \(check.stderr)")
            #expect(lines.allSatisfy { $0.hasPrefix("\(file):") }, "\(check.stderr)")
        }

        @Test func checkWithoutAFileSaysWhyAndWhereItLooked() throws {
            let dir = try TemporaryDirectory()
            let missing = dir.path + "/missing.yaml"
            let check = try Self.tollgate(["check", "-c", missing])
            #expect(check.status == 1)
            #expect(check.stderr.contains("\(missing):1:1: cannot read the configuration file: it does not exist"), "\(check.stderr)")
            #expect(check.stderr.contains("$TOLLGATE_CONFIG, else ./tollgate.yaml, else /etc/tollgate/tollgate.yaml"), "\(check.stderr)")
            // Without -c, in a folder without tollgate.yaml: the environment's file is used.
            var environment = ProcessInfo.processInfo.environment
            environment["TOLLGATE_CONFIG"] = missing
            let viaEnvironment = try ChildProcess.run(RelayProcess.binary, ["check"], timeout: 30, environment: environment, workingDirectory: dir.path)
            #expect(viaEnvironment.status == 1)
            #expect(viaEnvironment.stderr.contains("\(missing):1:1: cannot read the configuration file"), "\(viaEnvironment.stderr)")
        }
    }
}
