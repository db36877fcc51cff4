import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A real rspamd (Debian's package) for a test: Debian's `/etc/rspamd/rspamd.conf` with
/// a local configuration folder made here (`--var=LOCAL_CONFDIR=…`): the `rspamd_proxy`
/// worker in milter mode on a free loopback port, scanning itself (`self_scan`), the
/// other workers on free loopback ports, no fuzzy worker, no Redis, a four-line TLD list
/// (the full one takes rspamd half a minute to compile), and a `multimap` rule that
/// rejects a subject. Foreground (`-f`), stopped by PID; everything in a temporary folder.
final class RspamdMilter: @unchecked Sendable {
    let port: Int
    let folder: TemporaryDirectory
    let process: ChildProcess

    static var isAvailable: Bool { ExecutableLookup.find("rspamd") != nil && FileManager.default.fileExists(atPath: "/etc/rspamd/rspamd.conf") }

    var log: String { (try? String(contentsOfFile: folder.file("rspamd.log"), encoding: .utf8)) ?? "" }

    private init(port: Int, folder: TemporaryDirectory, process: ChildProcess) {
        self.port = port
        self.folder = folder
        self.process = process
    }

    static func start() async throws -> RspamdMilter {
        let folder = try TemporaryDirectory(label: "rspamd")
        chmod(folder.path, 0o755)
        let local = try folder.subdirectory("local.d")
        _ = try folder.subdirectory("db")
        _ = try folder.subdirectory("run")
        let port = freePort()
        let files: [String: String] = [
            "local.d/worker-proxy.inc": """
                bind_socket = "127.0.0.1:\(port)";
                milter = yes;
                timeout = 30s;
                upstream "local" { default = yes; self_scan = yes; }
                count = 1;

                """,
            "local.d/worker-normal.inc": "bind_socket = \"127.0.0.1:\(freePort())\";\ncount = 1;\n",
            "local.d/worker-controller.inc": "bind_socket = \"127.0.0.1:\(freePort())\";\ncount = 1;\n",
            "local.d/worker-fuzzy.inc": "count = 0;\n",
            "local.d/logging.inc": "type = \"console\";\nlevel = \"info\";\n",
            "local.d/options.inc": "url_tld = \"\(folder.file("tld.dat"))\";\ndns { timeout = 1s; retransmits = 1; }\n",
            "local.d/multimap.conf": """
                TOLLGATE_TEST_REJECT {
                  type = "header";
                  header = "Subject";
                  regexp = true;
                  map = "\(folder.file("reject-subjects.map"))";
                  action = "reject";
                  message = "Rejected by the Tollgate test rule";
                }

                """,
            // rspamd skips its headers for local (127.0.0.1) and authenticated senders by default
            "local.d/milter_headers.conf": """
                skip_local = false;
                skip_authenticated = false;
                use = ["x-spamd-result", "x-rspamd-server", "x-spam-level", "x-spam-status"];

                """,
            "reject-subjects.map": "/reject me/i\n",
            "tld.dat": "com\nnet\norg\nexample\n",
        ]
        for (name, text) in files { try text.write(toFile: folder.file(name), atomically: true, encoding: .utf8) }
        _ = local
        var arguments = ["-f", "-c", "/etc/rspamd/rspamd.conf", "-p", folder.file("run/rspamd.pid"),
                         "--var=LOCAL_CONFDIR=\(folder.path)", "--var=DBDIR=\(folder.file("db"))",
                         "--var=RUNDIR=\(folder.file("run"))", "--var=LOGDIR=\(folder.path)"]
        if getuid() == 0 {
            _ = try ChildProcess.run("chown", ["-R", "_rspamd:_rspamd", folder.path], timeout: 10)
            arguments += ["-u", "_rspamd", "-g", "_rspamd"]
        }
        let process = try ChildProcess.spawn("rspamd", arguments, stdoutPath: folder.file("rspamd.log"), stderrPath: folder.file("rspamd.log"), newProcessGroup: true)
        let milter = RspamdMilter(port: port, folder: folder, process: process)
        // rspamd loads its rules and language models first: several seconds on a busy machine
        guard await waitForPort(port, timeout: 90) else {
            let log = milter.log
            milter.stop()
            throw TestSupportError(.timedOut, "rspamd did not listen on \(port): \(log.suffix(3000))")
        }
        return milter
    }

    func stop() {
        _ = process.signal(SIGTERM)
        if process.waitForExit(timeout: 10) == nil { _ = process.signal(SIGKILL); _ = process.waitForExit(timeout: 5) }
        folder.remove()
    }
}
