import ArgumentParser
import Foundation
import Logging
import TollgateApp
import TollgateConfiguration
import TollgateSpool

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate the configuration, every policy file and every plugin.")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let report = await ConfigurationCheck.run(path: options.path)
        if report.diagnostics.isEmpty {
            print(report.summary)
            return
        }
        for d in report.diagnostics {
            FileHandle.standardError.write(Data("\(d)\n".utf8))
        }
        throw ExitCode(1)
    }
}
