import ArgumentParser
import Foundation
import TollgateApp
import TollgateConfiguration
import TollgateSpool

struct Explain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Dry-run the policy pipeline for an envelope; nothing is sent.")

    @OptionGroup var options: ConfigOption
    @Option(help: "Envelope sender.") var from: String
    @Option(help: "Envelope recipient (repeatable).") var to: [String]
    @Option(help: "Authenticated user.") var user: String?
    @Option(help: "Client IP address.") var client: String = "127.0.0.1"
    @Flag(help: "Pretend the session is encrypted.") var tls = false

    func validate() throws {
        if to.isEmpty { throw ValidationError("give at least one --to") }
    }

    func run() async throws {
        let configuration = try options.load()
        let result: ExplainCommand.Result
        do {
            result = try await ExplainCommand.run(configuration: configuration, from: from, to: to, user: user, client: client, tls: tls)
        } catch {
            throw UserError(message: "\(error)")
        }
        print(result.text, terminator: "")
        // Scripts can test a rule: 0 accepted, 1 refused.
        if result.refused { throw ExitCode(1) }
    }
}
