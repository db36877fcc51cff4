import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `make run-cluster`'s script as written (demo/cluster/run.sh), with the debug build:
/// its PostgreSQL and two nodes come up, six messages from one client over both nodes
/// meet the shared limit of five, both nodes deliver into the one outbox, and stopping
/// the script stops all three processes.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(3))) struct ClusterDemoLiveTests {
        @Test func theClusterDemoRunsAsWritten() async throws {
            let dir = try TemporaryDirectory(label: "cluster-demo")
            defer { dir.remove() }
            // The server runs as postgres when the tests run as root: it must reach its folder.
            chmod(dir.path, 0o755)
            let pgPort = freePort()
            var environment = ProcessInfo.processInfo.environment
            environment["TOLLGATE_BIN"] = RelayProcess.binary
            environment["CLUSTER_VAR"] = dir.path + "/var"
            environment["CLUSTER_PG_PORT"] = "\(pgPort)"
            let script = PluginLoaderTests.repositoryRoot + "/demo/cluster/run.sh"
            let demo = try ChildProcess.spawn("/bin/bash", [script], environment: environment, stdoutPath: dir.path + "/demo.out", stderrPath: dir.path + "/demo.err", newProcessGroup: true)
            defer { _ = demo.terminate(timeout: 10) as Int32? }
            func output() -> String { (TestFiles.readString(dir.path + "/demo.out") ?? "") + (TestFiles.readString(dir.path + "/demo.err") ?? "") }
            let up = await waitUntil(timeout: 60) {
                output().contains("Tollgate cluster demo") && canConnect(port: 2625) && canConnect(port: 2626)
            }
            try #require(up, "\(output())")
            var codes: [Int] = []
            for n in 0..<6 {
                let port = n % 2 == 0 ? 2625 : 2626
                do {
                    codes.append(try SMTPTestClient.sendMessage(port: port, from: "app@apps.example.com", to: ["ops@example.net"], data: testMessage(marker: "demo-\(n)")).code)
                } catch let error as TestSupportError {
                    codes.append(error.reply?.code ?? 0)
                }
            }
            #expect(codes == [250, 250, 250, 250, 250, 451], "\(codes) \(output())")
            let outbox = dir.path + "/var/outbox"
            #expect(await waitUntil(timeout: 20) { ((try? FileManager.default.contentsOfDirectory(atPath: outbox)) ?? []).filter { $0.hasSuffix(".eml") }.count == 5 })
            let list = try ChildProcess.run(RelayProcess.binary, ["queue", "list", "-c", dir.path + "/var/relay-b.yaml"], timeout: 30)
            #expect(list.stdout == "the queue is empty\n", "\(list.stdout)\(list.stderr)")
            #expect(demo.signal(SIGINT))
            #expect(await demo.waitForExit(timeout: 20) != nil, "the demo script did not stop")
            // The database is gone with it.
            #expect(await waitUntil(timeout: 10) { !canConnect(port: pgPort) })
        }
    }
}
