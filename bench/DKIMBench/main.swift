// The cost of signing one message with the `dkim` stage's signer: RSA-2048 against
// Ed25519, on a 4 KiB message (body hash, header canonicalisation and the signature —
// all the stage does per message). Run by bench/dkim-sign.sh in a release build.
import DKIMKeys
import DKIMStage
import Foundation
import TollgatePolicy

func seconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let count = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 2000 : 2000
var text = "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: benchmark\r\nDate: Mon, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
while text.utf8.count < 4096 { text += String(repeating: "x", count: 76) + "\r\n" }
let message = MessageContent(parsing: Array(text.utf8.prefix(4096)))

print("message: \(message.size) octets; \(count) signatures per key")
for (name, key) in [("rsa-2048", try DKIMKey.generate("rsa", bits: 2048)), ("ed25519", try DKIMKey.generate("ed25519"))] {
    let signer = DKIMSigner(key: key, domain: "example.com", selector: "bench")
    _ = try signer.signatureValue(for: message, time: 0)
    let start = seconds()
    var total = 0
    for i in 0..<count { total += try signer.signatureValue(for: message, time: Double(i)).utf8.count }
    let elapsed = seconds() - start
    print(String(format: "%@: %.1f µs per message, %.0f messages/s per core (%d octets of signatures)", name, elapsed / Double(count) * 1e6, Double(count) / elapsed, total))
}
