import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension SambaDC {
    /// The accounts of the test domain. Every password is `<Name>-Pa55word!`.
    ///
    /// - alice: direct member of `finance`; proxyAddresses `SMTP:` (primary),
    ///   `smtp:` (alias), `X400:` and `SIP:`; delegate of the shared mailbox `team`.
    /// - bob: member of `finance-payroll`, which is a member of `finance` (nesting).
    /// - carol: in no department and not in `relay-users`.
    /// - dave disabled (userAccountControl 514), erin locked (lockoutTime now),
    ///   frank expired (accountExpires yesterday), grace must change her password
    ///   (pwdLastSet 0).
    /// - relay: the service account (`OU=Services`).
    /// - `relay-users` contains `finance` (so alice and bob, through nesting).
    /// - `team` (`OU=Shared`): a mail-enabled group with `team@finance.example.test`
    ///   whose `member` is alice: the people who may send as the shared mailbox.
    public enum Account: String, CaseIterable, Sendable {
        case alice, bob, carol, dave, erin, frank, grace, relay

        public var password: String { rawValue.prefix(1).uppercased() + rawValue.dropFirst() + "-Pa55word!" }
        public var dn: String {
            switch self {
            case .alice: "CN=Alice Andersen,OU=Staff,\(SambaDC.baseDN)"
            case .relay: "CN=relay,OU=Services,\(SambaDC.baseDN)"
            default: "CN=\(rawValue),OU=Staff,\(SambaDC.baseDN)"
            }
        }
        public var upn: String { rawValue + "@example.test" }
        public var downLevel: String { SambaDC.netbiosDomain + "\\" + rawValue }
    }

    public static let financeGroup = "CN=finance,OU=Groups,\(baseDN)"
    public static let payrollGroup = "CN=finance-payroll,OU=Groups,\(baseDN)"
    public static let relayUsersGroup = "CN=relay-users,OU=Groups,\(baseDN)"
    public static let sharedOU = "OU=Shared,\(baseDN)"
    public static let teamAddress = "team@finance.example.test"
}

/// The provisioned and populated domain, made once per process.
enum SambaTemplate {
    static let seconds = Mutex<Double?>(nil)

    static let folder = Task<String, any Error> {
        let start = monotonic()
        let folder = try TemporaryDirectory(label: "samba-template")
        SambaCleanup.register(pid: nil, folder: folder.path)
        try await provision(folder.path)
        seconds.withLock { $0 = monotonic() - start }
        return folder.path
    }

    static func smbConf(folder: String, address: String) -> String {
        """
        [global]
        \tnetbios name = DC1
        \trealm = \(SambaDC.realm)
        \tworkgroup = \(SambaDC.netbiosDomain)
        \tserver role = active directory domain controller
        \tserver services = ldap
        \tinterfaces = \(address)/8
        \tbind interfaces only = yes
        \tprivate dir = \(folder)/private
        \tlock directory = \(folder)
        \tstate directory = \(folder)/state
        \tcache directory = \(folder)/cache
        \tbinddns dir = \(folder)/bind-dns
        \tpid directory = \(folder)
        \tlog file = \(folder)/log.%m
        \ttls enabled = yes
        \ttls keyfile = \(folder)/tls/key.pem
        \ttls certfile = \(folder)/tls/cert.pem
        \ttls cafile = \(folder)/tls/ca.pem
        \tldb:nosync = true
        \tidmap_ldb:use rfc2307 = yes

        """
    }

    private static func provision(_ folder: String) async throws {
        let options = [
            "interfaces=127.0.0.2/8", "bind interfaces only=yes", "log file=\(folder)/log.%m",
            "server services=ldap", "ldb:nosync=true",
        ]
        try await run("samba-tool", [
            "domain", "provision", "--realm=\(SambaDC.realm)", "--domain=\(SambaDC.netbiosDomain)",
            "--server-role=dc", "--dns-backend=NONE", "--use-rfc2307", "--host-name=dc1",
            "--adminpass=\(SambaDC.adminPassword)", "--targetdir=\(folder)",
        ] + options.map { "--option=\($0)" }, timeout: 600)
        _ = try TestCertificates.make(
            in: folder + "/tls", name: "dc", hostnames: ["localhost", "dc1.example.test"],
            ips: (2...12).map { "127.0.0.\($0)" }
        )
        try await run("mv", [folder + "/tls/dc-ca.pem", folder + "/tls/ca.pem"])
        try await run("mv", [folder + "/tls/dc.pem", folder + "/tls/cert.pem"])
        try await run("mv", [folder + "/tls/dc.key", folder + "/tls/key.pem"])
        guard chmod(folder + "/tls/key.pem", 0o600) == 0 else { throw SambaError("chmod key.pem failed") }
        try TestFiles.write(SambaTemplate.smbConf(folder: folder, address: "127.0.0.2"), to: folder + "/etc/smb.conf")
        try TestFiles.write(entries(), to: folder + "/entries.ldif")
        let sam = folder + "/private/sam.ldb"
        try await run("ldbadd", ["-H", sam, folder + "/entries.ldif"])
    }

    /// The domain's OUs, accounts and groups as LDIF (adds only, in dependency order).
    static func entries(now: Double = Double(time(nil))) -> String {
        let base = SambaDC.baseDN
        let filetimeNow = UInt64((now + 11_644_473_600) * 10_000_000)
        let filetimeYesterday = filetimeNow - 86_400 * 10_000_000
        var ldif = ""
        for ou in ["Staff", "Groups", "Shared", "Services"] {
            ldif += "dn: OU=\(ou),\(base)\nobjectClass: organizationalUnit\n\n"
        }
        func user(_ account: SambaDC.Account, mail: String?, extra: [String] = [], control: Int = 512) {
            ldif += "dn: \(account.dn)\nobjectClass: user\nsAMAccountName: \(account.rawValue)\n"
            ldif += "userPrincipalName: \(account.upn)\n"
            if let mail { ldif += "mail: \(mail)\n" }
            ldif += "userAccountControl: \(control)\n"
            ldif += "unicodePwd:: \(unicodePwd(account.password))\n"
            for line in extra { ldif += line + "\n" }
            ldif += "\n"
        }
        user(.alice, mail: "alice@finance.example.test", extra: [
            "proxyAddresses: SMTP:alice@finance.example.test",
            "proxyAddresses: smtp:a.andersen@finance.example.test",
            "proxyAddresses: X400:c=US;a= ;p=Example;o=Finance;s=Andersen;g=Alice;",
            "proxyAddresses: SIP:alice@example.test",
        ])
        user(.bob, mail: "bob@finance.example.test", extra: ["proxyAddresses: SMTP:bob@finance.example.test"])
        user(.carol, mail: "carol@example.test")
        user(.dave, mail: "dave@example.test", control: 514)
        user(.erin, mail: "erin@example.test", extra: ["lockoutTime: \(filetimeNow)"])
        user(.frank, mail: "frank@example.test", extra: ["accountExpires: \(filetimeYesterday)"])
        user(.grace, mail: "grace@example.test", extra: ["pwdLastSet: 0"])
        user(.relay, mail: nil, control: 66048)  // normal account, password never expires
        func group(_ dn: String, members: [String], extra: [String] = []) {
            ldif += "dn: \(dn)\nobjectClass: group\n"
            for member in members { ldif += "member: \(member)\n" }
            for line in extra { ldif += line + "\n" }
            ldif += "\n"
        }
        group(SambaDC.payrollGroup, members: [SambaDC.Account.bob.dn])
        group(SambaDC.financeGroup, members: [SambaDC.Account.alice.dn, SambaDC.payrollGroup])
        group(SambaDC.relayUsersGroup, members: [SambaDC.financeGroup])
        group("CN=team,\(SambaDC.sharedOU)", members: [SambaDC.Account.alice.dn], extra: [
            "mail: \(SambaDC.teamAddress)", "proxyAddresses: SMTP:\(SambaDC.teamAddress)",
            "proxyAddresses: smtp:finance-team@finance.example.test",
        ])
        return ldif
    }

    /// `unicodePwd` as AD wants it: the password in double quotes, UTF-16LE, base64.
    static func unicodePwd(_ password: String) -> String {
        var bytes: [UInt8] = []
        for unit in ("\"" + password + "\"").utf16 {
            bytes.append(UInt8(unit & 0xff))
            bytes.append(UInt8(unit >> 8))
        }
        return Data(bytes).base64EncodedString()
    }

    private static func run(_ executable: String, _ arguments: [String], timeout: Double = 60) async throws {
        let result = try await ChildProcess.runAsync(executable, arguments, timeout: timeout)
        guard result.status == 0 else {
            throw SambaError("\(executable) \(arguments.prefix(3).joined(separator: " ")) exited with \(result.status): \(result.stdout.suffix(1500)) \(result.stderr.suffix(1500))")
        }
    }

    private static func monotonic() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
