import ArgumentParser
import Foundation
import TollgateApp
import TollgateConfiguration
import TollgateSpool

/// The `tollgate` command. This file only parses arguments; the work is in TollgateCore.
@main
struct Tollgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tollgate",
        abstract: "An SMTP smart-host relay with a pipeline of policy stages.",
        version: Version.text,
        subcommands: [Serve.self, Check.self, Queue.self, Explain.self, DKIM.self, Version.self]
    )

    /// Exit codes per SPEC §2: 0 success, 1 user error, 2 usage error.
    static func main() async {
        // A bare `tollgate` is a usage error: say what the commands are, exit 2.
        if CommandLine.arguments.count == 1 {
            FileHandle.standardError.write(Data((helpMessage() + "\n").utf8))
            Foundation.exit(2)
        }
        do {
            var command = try parseAsRoot()
            // So is a group without its subcommand (`tollgate queue`, `tollgate dkim`).
            let chosen = type(of: command)
            if !chosen.configuration.subcommands.isEmpty, chosen.configuration.defaultSubcommand == nil {
                FileHandle.standardError.write(Data((helpMessage(for: chosen) + "\n").utf8))
                Foundation.exit(2)
            }
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as UserError {
            FileHandle.standardError.write(Data("tollgate: \(failure.message)\n".utf8))
            Foundation.exit(1)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error)
            }
            if code == .validationFailure || error is ValidationError {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// A problem the user can fix (exit code 1), reported as one line.
struct UserError: Error {
    var message: String
}

struct ConfigOption: ParsableArguments {
    @Option(name: .shortAndLong, help: "The configuration file (default: $TOLLGATE_CONFIG, ./tollgate.yaml, PREFIX/etc/tollgate/tollgate.yaml beside PREFIX/bin/tollgate, /etc/tollgate/tollgate.yaml).")
    var config: String?

    var path: String { ConfigurationLoader.resolvePath(config) }

    func load() throws -> TollgateConfiguration {
        do {
            return try ConfigurationLoader.load(path)
        } catch {
            throw UserError(message: "invalid configuration:\n\(error.description)")
        }
    }
}
