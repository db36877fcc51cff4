import ArgumentParser
import Foundation
import Logging
import TollgateApp
import TollgateConfiguration
import TollgateSpool

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the relay in the foreground, logging to stderr.")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let configuration = try options.load()
        LogSetup.bootstrap(format: configuration.log.format, level: configuration.log.level)
        let logger = Logger(label: "tollgate")
        signal(SIGPIPE, SIG_IGN)
        let server: TollgateServer
        do {
            server = try await TollgateServer(configPath: options.path, configuration: configuration, logger: logger)
        } catch {
            throw UserError(message: "cannot start: \(ErrorText.describe(error))")
        }
        try await server.run()
    }
}
