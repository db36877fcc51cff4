import ArgumentParser
import Foundation
import Logging
import TollgateApp
import TollgateConfiguration
import TollgateConsole
import TollgateSpool

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the relay in the foreground, logging to stderr.")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let configuration = try options.load()
        // The console's statistics count the log's events from the start.
        let tally = configuration.console == nil ? nil : EventTally(started: Date().timeIntervalSince1970)
        LogSetup.bootstrap(format: configuration.log.format, level: configuration.log.level, tally: tally)
        let logger = Logger(label: "tollgate")
        signal(SIGPIPE, SIG_IGN)
        let server: TollgateServer
        do {
            server = try await TollgateServer(configPath: options.path, configuration: configuration, logger: logger, eventTally: tally)
        } catch {
            throw UserError(message: "cannot start: \(ErrorText.describe(error))")
        }
        try await server.run()
    }
}
