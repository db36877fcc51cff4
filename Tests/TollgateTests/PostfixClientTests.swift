import Foundation
import TestSupport
import Testing

/// A throwaway Postfix (`postfix -c DIR start-fg`) in its own folder: queue, data and
/// configuration, a plaintext `smtpd` on `port` for injecting mail as local programs
/// would, and `relayhost` with SASL and mandatory TLS. Its log is `maillog`.
final class PostfixInstance: @unchecked Sendable {
    let directory: TemporaryDirectory
    let port: Int
    private var master: ChildProcess?

    var log: String { TestFiles.readString(directory.path + "/maillog") ?? "" }

    init(relayhost: Int, username: String, password: String, caFile: String, directory: TemporaryDirectory) throws {
        self.directory = directory
        self.port = freePort()
        let d = directory.path
        for sub in ["etc", "queue", "data"] {
            try FileManager.default.createDirectory(atPath: "\(d)/\(sub)", withIntermediateDirectories: true)
        }
        // The daemons run as `postfix`: they need to reach their folders.
        _ = try ChildProcess.run("chown", ["postfix", "\(d)/data"], timeout: 10)
        _ = try ChildProcess.run("chmod", ["755", d], timeout: 10)
        try TestFiles.write("[127.0.0.1]:\(relayhost) \(username):\(password)\n", to: "\(d)/etc/sasl_passwd")
        try FileManager.default.copyItem(atPath: caFile, toPath: "\(d)/etc/ca.pem")
        // The README's "internal MTA as a client" settings, plus what a private instance needs.
        try TestFiles.write(
            """
            compatibility_level = 3.6
            queue_directory = \(d)/queue
            data_directory = \(d)/data
            maillog_file_prefixes = \(d)
            maillog_file = \(d)/maillog
            command_directory = /usr/sbin
            daemon_directory = /usr/lib/postfix/sbin
            meta_directory = /etc/postfix
            shlib_directory = no
            mail_owner = postfix
            setgid_group = postdrop
            myhostname = app1.example.com
            myorigin = $myhostname
            mydestination =
            local_recipient_maps =
            alias_maps =
            alias_database =
            inet_interfaces = 127.0.0.1
            inet_protocols = ipv4
            mynetworks = 127.0.0.0/8
            smtpd_relay_restrictions = permit_mynetworks, reject
            maximal_backoff_time = 2s
            minimal_backoff_time = 1s
            queue_run_delay = 1s

            relayhost = [127.0.0.1]:\(relayhost)
            smtp_sasl_auth_enable = yes
            smtp_sasl_password_maps = texthash:\(d)/etc/sasl_passwd
            smtp_sasl_security_options = noanonymous
            smtp_sasl_tls_security_options = noanonymous
            smtp_tls_security_level = encrypt
            smtp_tls_CAfile = \(d)/etc/ca.pem

            """,
            to: "\(d)/etc/main.cf"
        )
        let services = [
            "127.0.0.1:\(port) inet n - n - - smtpd",
            "cleanup unix n - n - 0 cleanup", "qmgr unix n - n 300 1 qmgr", "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce", "defer unix - - n - 0 bounce", "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify", "proxymap unix - - n - - proxymap", "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp", "showq unix n - n - - showq", "error unix - - n - - error",
            "retry unix - - n - - error", "discard unix - - n - - discard", "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache", "tlsmgr unix - - n 1000? 1 tlsmgr", "flush unix n - n 1000? 0 flush",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        try TestFiles.write(services.joined(separator: "\n") + "\n", to: "\(d)/etc/master.cf")
    }

    func start() throws {
        // `postfix check` creates the queue's folders with their owners.
        let check = try ChildProcess.run("/usr/sbin/postfix", ["-c", directory.path + "/etc", "check"], timeout: 60)
        guard check.status == 0 else { throw TestFailure("postfix check failed: \(check.stderr) \(log)") }
        master = try ChildProcess.spawn(
            "/usr/sbin/postfix", ["-c", directory.path + "/etc", "start-fg"],
            stdoutPath: directory.path + "/postfix.out", stderrPath: directory.path + "/postfix.err"
        )
        guard waitUntil(timeout: 30, { isListening(port: port) }) else { throw TestFailure("postfix did not listen: \(log)") }
    }

    /// Stops the master (it stops its children), and whatever master its pid file names.
    func stop() {
        _ = master?.terminate(timeout: 10)
        master = nil
        // Only while that pid is still a Postfix master (never a reused pid).
        if let text = TestFiles.readString(directory.path + "/queue/pid/master.pid"),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1,
            TestFiles.readString("/proc/\(pid)/comm")?.hasPrefix("master") == true
        {
            kill(pid, SIGTERM)
        }
    }

    deinit { stop() }
}

/// README "internal MTA as a client": a Postfix with Tollgate as its `relayhost`, SASL
/// and TLS, relays mail of many senders under one login: cron mail from `root@host` and
/// its own bounces from `<>`. The account's department allows the host's senders and
/// the null sender (`sender-allowlist`: `senders`, `allow_null_sender`).
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(5))) struct PostfixClientTests {
        static let account = """

            dn: uid=mta-app1,ou=people,dc=example,dc=com
            objectClass: inetOrgPerson
            uid: mta-app1
            cn: MTA app1
            sn: app1
            mail: mta-app1@app1.example.com
            departmentNumber: servers
            userPassword: mta-pw

            """

        @Test func postfixRelaysCronMailAndItsOwnBouncesUnderOneLogin() async throws {
            try #require(FileManager.default.isExecutableFile(atPath: "/usr/sbin/postfix"), "postfix is installed by scripts/install-deps.sh test")
            let dir = try TemporaryDirectory()
            let ldif = dir.path + "/directory.ldif"
            try TestFiles.write((TestFiles.readString(Slapd.demoFolder + "/directory.ldif") ?? "") + Self.account, to: ldif)
            let slapd = try await Slapd.start(ldif: ldif)
            defer { Task { await slapd.stop() } }
            let certs = try TestCertificates.make(in: dir.path + "/certs")
            var sinkOptions = RawSMTPSink.Options()
            sinkOptions.advertise8BITMIME = true
            let sink = try RawSMTPSink.start(port: freePort(), directory: dir.path + "/sink", options: sinkOptions)
            defer { sink.stop() }
            try FileManager.default.createDirectory(atPath: dir.path + "/policies", withIntermediateDirectories: true)
            try TestFiles.write(
                """
                # An internal MTA's account: the host's senders and its bounces.
                department: servers
                members:
                  ldap_attributes: { departmentNumber: [servers] }
                sender-allowlist:
                  senders: ["*@app1.example.com"]
                  allow_null_sender: true

                """,
                to: dir.path + "/policies/servers.yaml"
            )
            let relay = try RelayProcess.startedWithTLS(
                listener: "tls: starttls\n    auth: required", certificates: certs,
                rest: """
                    upstreams:
                      - name: primary
                        hosts: [127.0.0.1:\(sink.port)]
                        tls: none
                    delivery:
                      retry: [1s]
                    stages:
                      - use: ldap
                        settings:
                          \(slapd.ldapSettings(indent: 6))
                          department_attribute: departmentNumber
                      - use: sender-allowlist
                        settings: {}
                    policies: \(dir.path)/policies
                    """,
                directory: dir
            )
            defer { relay.stop() }
            let postfixDir = try TemporaryDirectory(label: "postfix")
            let postfix = try PostfixInstance(relayhost: relay.port, username: "mta-app1", password: "mta-pw", caFile: certs.caCertificatePath, directory: postfixDir)
            try postfix.start()
            defer { postfix.stop() }

            // Cron mail, as a local program hands it to Postfix.
            let cron = try SMTPTestClient.sendMessage(port: postfix.port, from: "root@app1.example.com", to: ["ops@example.net"], data: testMessage(marker: "cron"))
            #expect(cron.code == 250)
            // A recipient Tollgate refuses (553 5.7.1, sender-specified routing): Postfix
            // bounces to root@app1.example.com from <>, through Tollgate.
            let refused = try SMTPTestClient.sendMessage(port: postfix.port, from: "root@app1.example.com", to: ["a%b@example.net"], data: testMessage(marker: "refused"))
            #expect(refused.code == 250)

            let arrived = await waitUntil(timeout: 60) { sink.messages().count >= 2 }
            #expect(arrived, "postfix: \(postfix.log)\nrelay: \(relay.log)")
            let messages = sink.messages()
            let delivered = try #require(messages.first { $0.rcptTo == ["ops@example.net"] }, "\(postfix.log)")
            #expect(delivered.mailFrom == "root@app1.example.com")
            #expect(delivered.text.contains("X-Marker: cron"))
            #expect(delivered.text.contains("with ESMTPSA"))
            let bounce = try #require(messages.first { $0.mailFrom.isEmpty }, "\(postfix.log)")
            #expect(bounce.rcptTo == ["root@app1.example.com"])
            #expect(bounce.text.contains("553 5.7.1"))
            #expect(bounce.text.contains("X-Marker: refused"))
            #expect(postfix.log.contains("status=sent"))
            #expect(postfix.log.contains("status=bounced"))
        }
    }
}
