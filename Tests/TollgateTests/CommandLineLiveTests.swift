import Foundation
import TestSupport
import Testing
import TollgateConsole

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
            // A group without its subcommand: its usage, on stderr, and 2.
            for group in ["queue", "dkim"] {
                let usage = try Self.tollgate([group])
                #expect(usage.status == 2 && usage.stdout.isEmpty, "\(group): \(usage.status) \(usage.stdout)")
                #expect(usage.stderr.contains("USAGE: tollgate \(group) <subcommand>"), "\(usage.stderr)")
            }
            #expect(try Self.tollgate(["queue", "--help"]).status == 0)
            #expect(try Self.tollgate(["explain", "--from", "a@b.example"]).status == 2)
        }

        /// `make run`'s configuration, beside its certificates and the repository's
        /// policies, checks clean, with the console and its administrator, whose password
        /// is the one the README and the demo's banner give.
        @Test func theDemoConfigurationChecks() async throws {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let demo = Slapd.demoFolder + "/.."
            try FileManager.default.createDirectory(atPath: dir.path + "/demo/var", withIntermediateDirectories: true)
            for file in ["tollgate.yaml", "console.htpasswd"] {
                try FileManager.default.copyItem(atPath: demo + "/" + file, toPath: dir.path + "/demo/" + file)
            }
            try FileManager.default.copyItem(atPath: demo + "/../policies", toPath: dir.path + "/policies")
            _ = try TestCertificates.make(in: dir.path + "/demo/certs")
            let check = try Self.tollgate(["check", "-c", dir.path + "/demo/tollgate.yaml"])
            #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
            #expect(check.stdout.contains("  console: http://127.0.0.1:9465/ administrators admin\n"), "\(check.stdout)")
            #expect(check.stdout.contains("  stages: ldap -> sender-allowlist -> rate-limit\n"), "\(check.stdout)")
            let users = try ConsoleUsers.load(dir.path + "/demo/console.htpasswd")
            #expect(await users.verify("admin", "admin-pw"))
            let banner = TestFiles.readString(demo + "/run.sh") ?? ""
            #expect(banner.contains("sign in as admin / admin-pw"))
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
                  - use: sender-alowlist
                delivery:
                  retry: 1m
                tls:
                  certificate: \(dir.path)
                  key: \(dir.path)/missing.key
                """.write(toFile: file, atomically: true, encoding: .utf8)
            let check = try Self.tollgate(["check", "-c", file])
            #expect(check.status == 1)
            let lines = check.stderr.split(separator: "\n").map(String.init)
            // The port out of range said as such, not as a malformed address.
            #expect(lines.count(where: { $0.hasPrefix("\(file):4:14: listener address: the port must be from 0 to 65535, not 99999") }) == 1, "\(check.stderr)")
            #expect(!check.stderr.contains("needs an address"), "\(check.stderr)")
            // The minimum that applies, with its reason.
            #expect(lines.contains { $0.hasPrefix("\(file):9:19: limits.max_recipients must be a whole number of at least 100, not '10' (RFC 5321") }, "\(check.stderr)")
            #expect(lines.contains { $0.hasPrefix("\(file):15:5: plugin 'no-such-plugin' not found (looked for") }, "\(check.stderr)")
            #expect(lines.contains { $0.hasPrefix("\(file):16:5: plugin 'sender-alowlist' not found — did you mean 'sender-allowlist'? (looked for") }, "\(check.stderr)")
            #expect(lines.contains { $0.hasPrefix("\(file):14:") && $0.contains("nobody") }, "the rate-limit plugin's error is missing: \(check.stderr)")
            // One line for a scalar where a list belongs, not a second "needs at least one".
            #expect(lines.filter { $0.hasPrefix("\(file):18:") } == ["\(file):18:10: delivery.retry must be a list of intervals such as [5m, 30m, 2h], not '1m'"], "\(check.stderr)")
            // Why a file cannot be read.
            #expect(lines.contains("\(file):20:16: cannot read \(dir.path): it is a folder, not a file"), "\(check.stderr)")
            #expect(lines.contains("\(file):21:8: cannot read \(dir.path)/missing.key: it does not exist"), "\(check.stderr)")
            #expect(Set(lines).count == lines.count, "a problem reported twice: \(check.stderr)")
            #expect(lines.allSatisfy { $0.hasPrefix("\(file):") }, "\(check.stderr)")
            // In the file's order, as an editor lists them.
            let places = lines.map { line in line.dropFirst(file.count + 1).split(separator: ":").prefix(2).map { Int($0) ?? 0 } }
            #expect(places == places.sorted { ($0[0], $0[1]) < ($1[0], $1[1]) }, "\(check.stderr)")
        }

        @Test func checkWithoutAFileSaysWhyAndWhereItLooked() throws {
            let dir = try TemporaryDirectory()
            let missing = dir.path + "/missing.yaml"
            let check = try Self.tollgate(["check", "-c", missing])
            #expect(check.status == 1)
            #expect(check.stderr.contains("\(missing):1:1: cannot read the configuration file: it does not exist"), "\(check.stderr)")
            #expect(check.stderr.contains("$TOLLGATE_CONFIG, else ./tollgate.yaml, else PREFIX/etc/tollgate/tollgate.yaml beside PREFIX/bin/tollgate, else /etc/tollgate/tollgate.yaml"), "\(check.stderr)")
            // Without -c, in a folder without tollgate.yaml: the environment's file is used.
            var environment = ProcessInfo.processInfo.environment
            environment["TOLLGATE_CONFIG"] = missing
            let viaEnvironment = try ChildProcess.run(RelayProcess.binary, ["check"], timeout: 30, environment: environment, workingDirectory: dir.path)
            #expect(viaEnvironment.status == 1)
            #expect(viaEnvironment.stderr.contains("\(missing):1:1: cannot read the configuration file"), "\(viaEnvironment.stderr)")
        }
    }
}
