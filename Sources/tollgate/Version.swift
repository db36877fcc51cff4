import ArgumentParser
import TollgateApp
import TollgateConfiguration
import TollgateSpool
import TollgatePolicy

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version and the plugin ABI version.")

    func run() {
        print("tollgate \(TollgateVersion.string)")
        print("plugin ABI \(TollgatePolicyABI.version) (Swift \(TollgateVersion.compiler))")
    }
}
