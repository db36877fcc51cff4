import Foundation
import TestSupport
import Testing

/// `tollgate serve` under systemd's notify protocol, with a socket the test binds in
/// place of systemd's, and the shipped unit checked by `systemd-analyze verify`.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(2))) struct SystemdLiveTests {
        let outbox = """
            upstreams:
              - name: out
                directory: outbox
            """

        /// CLOCK_MONOTONIC in microseconds, the clock of `MONOTONIC_USEC`.
        static func monotonicMicroseconds() -> UInt64 {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
        }

        static func lines(_ message: String) -> [String] { message.split(separator: "\n").map(String.init) }

        @Test func notifiesReadyReloadingWatchdogAndStopping() throws {
            let relay = try RelayProcess(rest: outbox)
            let socket = try NotifySocket(path: relay.directory.path + "/notify.sock")
            var environment = ProcessInfo.processInfo.environment
            environment["NOTIFY_SOCKET"] = socket.path
            environment["WATCHDOG_USEC"] = "400000"
            environment.removeValue(forKey: "WATCHDOG_PID")
            try relay.start(environment: environment)
            defer { relay.stop() }
            let process = try #require(relay.process)

            // READY=1 comes once the listener accepts: a client connecting right after is greeted.
            let ready = try #require(socket.receive(until: "READY=1", timeout: 10), "no READY=1: \(relay.log)")
            #expect(ready.before.allSatisfy { !$0.contains("STOPPING=1") })
            let client = try SMTPTestClient.connect(port: relay.port)
            #expect(try client.readReply().code == 220)
            client.close()

            // WATCHDOG=1 every WATCHDOG_USEC/2 (0.2 s): at least 4 within 1.5 s.
            var pings = 0
            let start = Date()
            while Date().timeIntervalSince(start) < 1.5 {
                if let m = socket.receive(timeout: 0.5), Self.lines(m).contains("WATCHDOG=1") { pings += 1 }
            }
            #expect(pings >= 4, "WATCHDOG=1 \(pings) times in 1.5 s")

            // SIGHUP: RELOADING=1 with MONOTONIC_USEC on our clock, then READY=1.
            let before = Self.monotonicMicroseconds()
            #expect(process.signal(SIGHUP))
            let reloading = try #require(socket.receive(until: "RELOADING=1", timeout: 10), "no RELOADING=1: \(relay.log)")
            let usec = Self.lines(reloading.match).first { $0.hasPrefix("MONOTONIC_USEC=") }.flatMap { UInt64($0.dropFirst("MONOTONIC_USEC=".count)) }
            let stamp = try #require(usec, "RELOADING=1 without MONOTONIC_USEC: \(reloading.match)")
            #expect(stamp >= before && stamp <= Self.monotonicMicroseconds())
            #expect(socket.receive(until: "READY=1", timeout: 10) != nil)
            #expect(waitUntil(timeout: 10) { relay.log.contains("configuration reloaded") })

            // SIGTERM: STOPPING=1, and a clean exit.
            #expect(process.signal(SIGTERM))
            #expect(socket.receive(until: "STOPPING=1", timeout: 10) != nil, "no STOPPING=1: \(relay.log)")
            #expect(process.waitForExit(timeout: 20) == 0)
        }

        /// The unit file as shipped, with ExecStart pointed at the built binary (verify
        /// insists the command exists): no error and no warning.
        @Test func unitFilePassesSystemdAnalyzeVerify() throws {
            guard let analyze = ExecutableLookup.find("systemd-analyze") else {
                Issue.record("systemd-analyze is not installed (scripts/install-deps.sh test installs systemd)")
                return
            }
            let directory = try TemporaryDirectory()
            let unit = try String(contentsOfFile: LiveRelayTests.PluginLoaderTests.repositoryRoot + "/dist/systemd/tollgate.service", encoding: .utf8)
            for key in [
                "Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "User=tollgate", "NoNewPrivileges=yes", "ProtectSystem=strict",
                "ProtectHome=yes", "PrivateTmp=yes", "ReadWritePaths=/var/lib/tollgate", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
                "AmbientCapabilities=CAP_NET_BIND_SERVICE", "LimitNOFILE=8192",
            ] {
                #expect(unit.split(separator: "\n").contains(Substring(key)), "the unit lacks \(key)")
            }
            let path = directory.path + "/tollgate.service"
            try unit.replacingOccurrences(of: "/usr/local/bin/tollgate", with: RelayProcess.binary).write(toFile: path, atomically: true, encoding: .utf8)
            let result = try ChildProcess.run(analyze, ["verify", "--man=no", path], timeout: 60)
            #expect(result.status == 0, "systemd-analyze verify: \(result.stderr)")
            #expect(!result.stderr.contains("tollgate.service"), "systemd-analyze verify warns: \(result.stderr)")
        }
    }
}
