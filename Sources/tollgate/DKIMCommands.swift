import ArgumentParser
import DKIMKeys
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `tollgate dkim …`: DKIM key management.
struct DKIM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dkim",
        abstract: "DKIM signing keys.",
        subcommands: [Keygen.self]
    )

    /// `tollgate dkim keygen --domain D --selector S`: writes a private key and prints
    /// the DNS TXT record that publishes its public half.
    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new DKIM key pair and print the DNS TXT record to publish.",
            discussion: "The private key is written as PKCS#8 PEM, readable by its owner only; the record goes to standard output."
        )

        @Option(help: "The signing domain (d=), e.g. example.com.") var domain: String
        @Option(help: "The selector (s=), e.g. mail2026.") var selector: String
        @Option(help: "rsa (rsa-sha256) or ed25519 (ed25519-sha256, RFC 8463).") var type: String = "rsa"
        @Option(help: "RSA key size: 1024, 2048, 3072 or 4096.") var bits: Int = 2048
        @Option(help: "The key file to write (default: <selector>.<domain>.pem in the current folder).") var out: String?
        @Flag(help: "Replace the key file if it exists.") var force = false

        func run() throws {
            let key: DKIMKey
            do {
                key = try DKIMKey.generate(type.lowercased(), bits: bits)
            } catch {
                throw UserError(message: "\(error)")
            }
            let path = out ?? "\(selector).\(domain).pem"
            if !force, FileManager.default.fileExists(atPath: path) {
                throw UserError(message: "\(path) exists; use --force to replace it")
            }
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw UserError(message: "cannot write \(path): \(String(cString: strerror(errno)))") }
            let pem = Array(key.pem.utf8)
            let written = pem.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            guard written == pem.count else { throw UserError(message: "cannot write \(path)") }
            FileHandle.standardError.write(Data("tollgate: wrote the \(key.algorithm) private key to \(path); publish this record:\n".utf8))
            print(key.dnsRecord(domain: domain, selector: selector))
        }
    }
}
