import Foundation

/// Certificates made with the `openssl` command for TLS tests: a throwaway CA
/// and a server certificate it signed (P-256 keys, which are fast to make).
///
/// Files are named after `name`, so several sets can share a folder:
/// `<name>-ca.pem`, `<name>-ca.key`, `<name>.pem`, `<name>.key`.
/// The server certificate carries `subjectAltName` DNS and IP entries,
/// `extendedKeyUsage=serverAuth,clientAuth` and is valid for `validityDays`.
public struct TestCertificates: Sendable {
    /// The server key's algorithm. RSA keys allow static-RSA and ECDHE-RSA suites;
    /// P-256 keys (fast to make) ECDHE-ECDSA ones.
    public enum KeyType: Sendable {
        case p256, rsa2048

        var arguments: [String] {
            switch self {
            case .p256: ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
            case .rsa2048: ["-newkey", "rsa:2048"]
            }
        }
    }

    /// The CA certificate to trust (for ``makeSelfSigned(in:name:hostnames:ips:)``: the certificate itself).
    public let caCertificatePath: String
    /// The CA's private key (`nil` for a self-signed certificate).
    public let caKeyPath: String?
    /// The server certificate (PEM). There are no intermediates, so this is the whole chain.
    public let certificatePath: String
    /// The server's private key (PEM, PKCS #8, unencrypted).
    public let keyPath: String

    /// A CA and a server certificate signed by it, for `hostnames` and `ips`.
    public static func make(
        in directory: String,
        name: String = "server",
        hostnames: [String] = ["localhost"],
        ips: [String] = ["127.0.0.1"],
        validityDays: Int = 2,
        keyType: KeyType = .p256
    ) throws -> TestCertificates {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let certificates = TestCertificates(directory: directory, name: name)
        try certificates.makeCA(validityDays: validityDays)
        let csr = try certificates.makeKeyAndRequest(directory: directory, name: name, hostnames: hostnames, keyType: keyType)
        let extensions = try writeExtensions(directory: directory, name: name, hostnames: hostnames, ips: ips)
        try openssl([
            "x509", "-req", "-in", csr, "-CA", certificates.caCertificatePath, "-CAkey", certificates.caKeyPath!,
            "-set_serial", randomSerial(), "-days", String(validityDays), "-sha256",
            "-extfile", extensions, "-out", certificates.certificatePath,
        ])
        return certificates
    }

    /// A self-signed server certificate (no CA): verification must fail unless
    /// the certificate itself is trusted. ``caCertificatePath`` is the certificate.
    public static func makeSelfSigned(
        in directory: String,
        name: String = "selfsigned",
        hostnames: [String] = ["localhost"],
        ips: [String] = ["127.0.0.1"]
    ) throws -> TestCertificates {
        let certificate = directory + "/\(name).pem"
        let key = directory + "/\(name).key"
        try openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", certificate, "-days", "2", "-sha256",
            "-subj", "/CN=\(hostnames.first ?? ips.first ?? "tollgate-test")",
            "-addext", "subjectAltName=\(subjectAltName(hostnames: hostnames, ips: ips))",
            "-addext", "extendedKeyUsage=serverAuth,clientAuth",
        ])
        return TestCertificates(caCertificatePath: certificate, caKeyPath: nil, certificatePath: certificate, keyPath: key)
    }

    /// A server certificate from a valid CA whose validity ended in 2020
    /// (made with `openssl ca -startdate/-enddate`): verification fails with
    /// "certificate has expired" while names and chain are otherwise right.
    public static func makeExpired(
        in directory: String,
        name: String = "expired",
        hostnames: [String] = ["localhost"],
        ips: [String] = ["127.0.0.1"]
    ) throws -> TestCertificates {
        let certificates = TestCertificates(directory: directory, name: name)
        try certificates.makeCA(validityDays: 2)
        let csr = try certificates.makeKeyAndRequest(directory: directory, name: name, hostnames: hostnames)
        let extensions = try writeExtensions(directory: directory, name: name, hostnames: hostnames, ips: ips)
        let database = directory + "/\(name)-ca-db"
        try TestFiles.write("", to: database + ".index")
        try TestFiles.write(String(randomSerial().dropFirst(2)) + "\n", to: database + ".serial")
        let config = directory + "/\(name)-ca.cnf"
        try TestFiles.write(
            """
            [ ca ]
            default_ca = test_ca
            [ test_ca ]
            database = \(database).index
            serial = \(database).serial
            new_certs_dir = \(directory)
            default_md = sha256
            policy = policy_any
            unique_subject = no
            [ policy_any ]
            commonName = supplied

            """,
            to: config
        )
        try openssl([
            "ca", "-batch", "-notext", "-config", config, "-cert", certificates.caCertificatePath,
            "-keyfile", certificates.caKeyPath!, "-in", csr, "-out", certificates.certificatePath,
            "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-extfile", extensions,
        ])
        return certificates
    }

    // MARK: - Steps

    private init(caCertificatePath: String, caKeyPath: String?, certificatePath: String, keyPath: String) {
        self.caCertificatePath = caCertificatePath
        self.caKeyPath = caKeyPath
        self.certificatePath = certificatePath
        self.keyPath = keyPath
    }

    private init(directory: String, name: String) {
        self.init(
            caCertificatePath: directory + "/\(name)-ca.pem", caKeyPath: directory + "/\(name)-ca.key",
            certificatePath: directory + "/\(name).pem", keyPath: directory + "/\(name).key"
        )
    }

    private func makeCA(validityDays: Int) throws {
        try Self.openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", caKeyPath!, "-out", caCertificatePath, "-days", String(validityDays), "-sha256",
            "-subj", "/CN=Tollgate Test CA \(Self.randomSerial().suffix(8))",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
    }

    private func makeKeyAndRequest(directory: String, name: String, hostnames: [String], keyType: KeyType = .p256) throws -> String {
        let csr = directory + "/\(name).csr"
        try Self.openssl(["req", "-new"] + keyType.arguments + [
            "-nodes",
            "-keyout", keyPath, "-out", csr, "-subj", "/CN=\(hostnames.first ?? "tollgate-test")",
        ])
        return csr
    }

    private static func writeExtensions(directory: String, name: String, hostnames: [String], ips: [String]) throws -> String {
        let path = directory + "/\(name).ext"
        var lines = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=serverAuth,clientAuth",
        ]
        if !hostnames.isEmpty || !ips.isEmpty {
            lines.append("subjectAltName=" + subjectAltName(hostnames: hostnames, ips: ips))
        }
        try TestFiles.write(lines.joined(separator: "\n") + "\n", to: path)
        return path
    }

    private static func subjectAltName(hostnames: [String], ips: [String]) -> String {
        (hostnames.map { "DNS:" + $0 } + ips.map { "IP:" + $0 }).joined(separator: ",")
    }

    private static func randomSerial() -> String {
        "0x" + (0..<16).map { _ in String(UInt8.random(in: 0...15), radix: 16) }.joined()
    }

    private static func openssl(_ arguments: [String]) throws {
        let result = try ChildProcess.run("openssl", arguments, timeout: 30)
        guard result.status == 0 else {
            throw TestSupportError(
                .processFailed,
                "openssl \(arguments.joined(separator: " ")) exited with \(result.status): \(result.stderr.suffix(2000))"
            )
        }
    }
}
