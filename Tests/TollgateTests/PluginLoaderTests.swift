import Foundation
import Logging
import TestSupport
import Testing
import TollgateApp
import TollgateConfiguration
import TollgatePipeline
import TollgateSpool
import TollgatePolicy

/// Plugins are loaded from their shared objects through the relay's loader — never
/// linked into the tests.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(10))) struct PluginLoaderTests {
        /// The folder where `swift build` put the executable and the plugin libraries.
        static var binFolder: String { (RelayProcess.binary as NSString).deletingLastPathComponent }

        static func host() -> RelayPolicyHost {
            RelayPolicyHost(plugin: "test", logger: Logger(label: "test"), policies: DepartmentPolicies())
        }

        @Test(arguments: ["ldap", "sender-allowlist", "rate-limit", "dkim"])
        func bundledPluginLoadsFromItsSharedObject(_ name: String) throws {
            let path = try #require(PluginLoader.locate(name, searchPath: [Self.binFolder]), "no library for \(name) in \(Self.binFolder)")
            #expect(path.hasSuffix("libtollgate-\(name).so"))
            let factory = try PluginLoader.load(path)
            #expect(factory.name == name)
            // Settings errors come back located.
            let location = SourceLocation(file: "t.yaml", line: 7, column: 5)
            let bogus = PolicySettings(.map([(key: "no_such_key", keyLocation: location, value: PolicySettings(.scalar("1"), at: location))]), at: location)
            let problems = factory.validate(settings: bogus, host: Self.host())
            #expect(problems.contains { $0.description.hasPrefix("t.yaml:7:5: ") && $0.message.contains("no_such_key") })
        }

        /// The third-party fixture, built once per test process as a separate package,
        /// with its own tests on the plugin test kit (`TollgatePolicyTestKit`) run too.
        static let fixture: Result<(scratch: TemporaryDirectory, library: String, testOutput: String), any Error> = Result {
            let scratch = try TemporaryDirectory()
            let packagePath = repositoryRoot + "/Tests/Fixtures/ThirdPartyPlugin"
            let test = try ChildProcess.run("swift", ["test", "--package-path", packagePath, "--scratch-path", scratch.path + "/build"], timeout: 600)
            guard test.status == 0 else { throw TestSupportError(.processFailed, "the fixture plugin did not build or its tests failed: \(test.stdout)\(test.stderr)") }
            return (scratch, scratch.path + "/build/debug/libtollgate-domain-block.so", test.stdout + test.stderr)
        }

        /// A third-party package depends on the test kit and its tests pass; neither the
        /// kit nor the repository's test helpers are in any plugin's shared object (the
        /// fixture's or a bundled one).
        @Test func thirdPartyPluginTestsItselfWithTheTestKit() throws {
            let fixture = try Self.fixture.get()
            #expect(fixture.testOutput.contains("Suite DomainBlockTests passed"))
            let bundled = ["ldap", "sender-allowlist", "rate-limit", "dkim", "postfix-policy", "milter"].map { Self.binFolder + "/libtollgate-\($0).so" }
            for library in [fixture.library] + bundled {
                let symbols = try ChildProcess.run("nm", ["-D", "--defined-only", library], timeout: 60)
                #expect(symbols.status == 0, "nm \(library): \(symbols.stderr)")
                #expect(symbols.stdout.contains("tollgate_plugin_create"), "\(library) exports no entry point")
                for helper in ["TollgatePolicyTestKit", "PolicyTestSupport"] {
                    #expect(!symbols.stdout.contains(helper), "\(library) links \(helper)")
                }
            }
        }

        @Test func thirdPartyPluginBuiltSeparatelyLoadsLikeABundledOne() async throws {
            let library = try Self.fixture.get().library
            let factory = try PluginLoader.load(library)
            #expect(factory.name == "domain-block")
            let location = SourceLocation(file: "t.yaml", line: 1, column: 1)
            let settings = PolicySettings(.map([(key: "domains", keyLocation: location, value: PolicySettings(.list([PolicySettings(.scalar("blocked.example"), at: location)]), at: location))]), at: location)
            #expect(factory.validate(settings: settings, host: Self.host()).isEmpty)
            let stage = try await factory.makeStage(settings: settings, host: Self.host())
            let blocked = try await stage.evaluate(PolicyContext(phase: .rcpt, sessionID: "s", listener: "l", clientAddress: "127.0.0.1", recipient: "x@blocked.example"))
            #expect(blocked.verdict.reply?.code == 550)
            let allowed = try await stage.evaluate(PolicyContext(phase: .rcpt, sessionID: "s", listener: "l", clientAddress: "127.0.0.1", recipient: "x@fine.example"))
            #expect(allowed.verdict == .continue)
            #expect(allowed.facts.tags["domain-block"] == "checked")
            // A message change across the library boundary (ABI 2).
            let message = MessageContent(parsing: Array("From: a@x.example\r\nX-Internal: 1\r\nX-Internal: 2\r\n\r\nbody\r\n".utf8))
            let data = try await stage.evaluate(PolicyContext(phase: .data, sessionID: "s", listener: "l", clientAddress: "127.0.0.1", message: message))
            let changed = try message.applying(data.changes)
            #expect(String(decoding: changed.bytes, as: UTF8.self) == "From: a@x.example\r\nX-Domain-Block: checked\r\n\r\nbody\r\n")
            // The stage's own metrics across the library boundary (ABI 3).
            #expect(await stage.metrics() == [.gauge("domains", "Domains this stage refuses", 1)])
        }

        /// A relay (not started) with the fixture's stage blocking `blocked.example`,
        /// delivering to a sink of its own.
        static func domainBlockRelay(_ label: String, limits: String? = nil) throws -> (RelayProcess, RawSMTPSink) {
            let library = try Self.fixture.get().library
            let dir = try TemporaryDirectory(label: label)
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink")
            let relay = try RelayProcess(
                rest: upstreamSection(port: sinkPort) + """

                    \(limits.map { "limits:\n  " + $0 } ?? "")
                    stages:
                      - use: domain-block
                        library: \(library)
                        on_error: defer
                        settings:
                          domains: [blocked.example]
                    """,
                directory: dir
            )
            return (relay, sink)
        }

        /// A session that began before a reload keeps the stages it began with for as
        /// long as it lasts — here longer than `command_timeout`, after which the old
        /// pipeline used to be shut down under it — and those stages are shut down once
        /// it ends; a session begun after the reload has the new ones. The fixture's
        /// stage throws if it is used after its `shutdown()`.
        @Test func aSessionOpenAcrossAReloadKeepsItsStagesUntilItEnds() throws {
            let (relay, sink) = try Self.domainBlockRelay("reloadsession", limits: "command_timeout: 2s")
            defer { sink.stop() }
            try relay.start()
            defer { relay.stop() }
            let old = try SMTPTestClient.connect(port: relay.port)
            defer { old.close() }
            #expect(try old.readReply().code == 220)
            try old.command("EHLO client.example", expect: 250)
            #expect(relay.process?.signal(SIGHUP) == true)
            #expect(waitUntil(timeout: 10) { relay.log.contains("configuration reloaded") }, "\(relay.log.suffix(2000))")
            // Kept alive past the 2 s command timeout and the 5 s grace.
            for _ in 0..<7 {
                Thread.sleep(forTimeInterval: 1)
                try old.command("NOOP", expect: 250)
            }
            try old.command("MAIL FROM:<a@example.com>", expect: 250)
            let allowed = try old.command("RCPT TO:<b@fine.example>")
            #expect(allowed.code == 250, "the old session's stage was shut down under it: \(allowed)")
            let blocked = try old.command("RCPT TO:<c@blocked.example>")
            #expect(blocked.code == 550, "\(blocked)")
            #expect(!relay.log.contains("used after its shutdown"), "\(relay.log.suffix(2000))")
            // A session after the reload uses the new stages.
            let fresh = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["d@fine.example"], data: Array("Subject: new\r\n\r\nBody.\r\n".utf8))
            #expect(fresh.code == 250, "\(fresh)")
        }

        /// ABI 2's dispositions and envelope changes through a real relay and the
        /// fixture plugin: hold keeps the message held in the queue, discard answers 250
        /// and drops it, a header asked for at RCPT is in the delivered message, and a
        /// data-phase redirect changes the sender and the recipients the upstream sees.
        @Test func holdDiscardPrependAndRedirectThroughARealRelay() throws {
            let (relay, sink) = try Self.domainBlockRelay("disposition")
            defer { sink.stop() }
            try relay.start()
            defer { relay.stop() }
            func send(_ to: [String], _ marker: String, extra: String = "") throws -> (code: Int, id: String) {
                let data = Array("From: a@example.com\r\nTo: b@example.net\r\nSubject: \(marker)\r\nX-Marker: \(marker)\r\n\(extra)\r\nBody.\r\n".utf8)
                let reply = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: to, data: data)
                return (reply.code, reply.text.split(separator: " ").last.map(String.init) ?? "")
            }
            let held = try send(["hold@example.net", "b@example.net"], "held")
            #expect(held.code == 250)
            let discarded = try send(["discard@example.net"], "discarded")
            #expect(discarded.code == 250)
            let prepended = try send(["prepend@example.net"], "prepended")
            #expect(prepended.code == 250)
            let redirected = try send(["b@example.net", "c@example.net"], "redirected", extra: "X-Redirect: archive@example.org\r\n")
            #expect(redirected.code == 250)

            #expect(waitUntil(timeout: 20) { sink.messages().count >= 2 }, "\(relay.log.suffix(3000))")
            // Give a wrongly released held or discarded message time to arrive too.
            Thread.sleep(forTimeInterval: 1.5)
            let messages = sink.messages()
            #expect(messages.count == 2, "\(messages.map(\.text))")
            let prepend = try #require(messages.first { $0.text.contains("X-Marker: prepended") })
            #expect(prepend.text.contains("X-Prepended: at RCPT for prepend@example.net\r\n"), "\(prepend.text)")
            #expect(prepend.text.contains("X-Domain-Block: checked\r\n"))
            // The queue id a data-phase stage saw is the one the 250 gave (ABI 4).
            #expect(prepend.text.contains("X-Domain-Block-Queue-ID: \(prepended.id)\r\n"), "\(prepend.text)")
            let redirect = try #require(messages.first { $0.text.contains("X-Marker: redirected") })
            #expect(redirect.mailFrom == "redirector@example.com")
            #expect(redirect.rcptTo == ["archive@example.org"])
            #expect(!messages.contains { $0.text.contains("X-Marker: held") || $0.text.contains("X-Marker: discarded") })
            // Delivered: no longer queued, still shown from the history (spool.history).
            #expect(try relay.cli(["queue", "list"]).stdout.contains(prepended.id) == false)
            let history = try relay.cli(["queue", "show", prepended.id])
            #expect(history.status == 0, "\(history.stderr)")
            #expect(history.stdout.contains("state:       delivered at "), "\(history.stdout)")
            #expect(history.stdout.contains("<prepend@example.net> delivered, attempts 1, last reply: 250"), "\(history.stdout)")
            #expect(history.stdout.contains("rcpt domain-block: continue (domain example.net allowed; changes at data: +X-Prepended)"), "\(history.stdout)")

            // Held: in the queue as held, with the reason, until released.
            let list = try relay.cli(["queue", "list", "--state", "held"]).stdout
            #expect(list.contains(held.id), "\(list)")
            let show = try relay.cli(["queue", "show", held.id]).stdout
            #expect(show.contains("state:       held"), "\(show)")
            #expect(show.contains("hold: asked by hold@example.net"), "\(show)")
            // Discarded: never queued, and logged.
            let unknown = try relay.cli(["queue", "show", discarded.id])
            #expect(unknown.status == 1)
            #expect(relay.log.contains("discarded"), "\(relay.log.suffix(2000))")
            #expect(try relay.cli(["queue", "release", held.id]).status == 0)
            #expect(waitUntil(timeout: 20) { sink.messages().contains { $0.text.contains("X-Marker: held") } }, "\(relay.log.suffix(2000))")
            let released = try #require(sink.messages().first { $0.text.contains("X-Marker: held") })
            #expect(Set(released.rcptTo) == ["hold@example.net", "b@example.net"])
        }

        @Test func incompatibleAndBrokenLibrariesAreRefusedWithTheReason() throws {
            let dir = try TemporaryDirectory()
            let fixtures = Self.repositoryRoot + "/Tests/Fixtures/IncompatiblePlugin"
            for name in ["incompatible", "notaplugin"] {
                let cc = try ChildProcess.run("cc", ["-shared", "-fPIC", "-o", "\(dir.path)/lib\(name).so", "\(fixtures)/\(name).c"], timeout: 60)
                #expect(cc.status == 0, "\(cc.stderr)")
            }
            func refusal(_ path: String) -> String? {
                do {
                    _ = try PluginLoader.load(path)
                    return nil
                } catch {
                    return error.description
                }
            }
            let future = try #require(refusal("\(dir.path)/libincompatible.so"))
            #expect(future.hasPrefix("\(dir.path)/libincompatible.so: "))
            #expect(future.contains("ABI 999"))
            let foreign = try #require(refusal("\(dir.path)/libnotaplugin.so"))
            #expect(foreign.contains("is not a Tollgate plugin"))
            try "this is not an ELF file".write(toFile: "\(dir.path)/libgarbage.so", atomically: true, encoding: .utf8)
            let garbage = try #require(refusal("\(dir.path)/libgarbage.so"))
            #expect(garbage.contains("cannot be loaded"))
            #expect(refusal("\(dir.path)/libmissing.so")?.contains("no such file") == true)

            // Through `tollgate check`: the file and the reason, located at the stage.
            let config = """
                listeners:
                  - name: a
                    address: 127.0.0.1:1
                upstreams:
                  - name: u
                    directory: out
                stages:
                  - use: incompatible
                    library: \(dir.path)/libincompatible.so
                """
            try config.write(toFile: dir.path + "/t.yaml", atomically: true, encoding: .utf8)
            let check = try ChildProcess.run(RelayProcess.binary, ["check", "-c", dir.path + "/t.yaml"], timeout: 30)
            #expect(check.status == 1)
            #expect(check.stderr.contains("\(dir.path)/t.yaml:8:5: plugin 'incompatible' refused: \(dir.path)/libincompatible.so"))
        }

        @Test func relayExecutableDoesNotContainThePlugins() throws {
            let nm = try ChildProcess.run("nm", ["-D", "--defined-only", RelayProcess.binary], timeout: 60)
            #expect(nm.status == 0)
            #expect(!nm.stdout.contains("tollgate_plugin_create"))
            let ldd = try ChildProcess.run("ldd", [RelayProcess.binary], timeout: 60)
            #expect(ldd.stdout.contains("libTollgatePolicy.so"))
            #expect(!ldd.stdout.contains("libtollgate-"))
        }

        static var repositoryRoot: String {
            var dir = Self.binFolder
            while dir != "/", !FileManager.default.fileExists(atPath: dir + "/Package.swift") {
                dir = (dir as NSString).deletingLastPathComponent
            }
            return dir
        }
    }
}
