import ArgumentParser
import TollgateApp
import TollgateConfiguration
import TollgateSpool
import TollgatePolicy

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version and the plugin ABI version.")

    /// Also what `tollgate --version` prints.
    static var text: String {
        "tollgate \(TollgateVersion.string)\nplugin ABI \(TollgatePolicyABI.version) (Swift \(TollgateVersion.compiler))"
    }

    func run() {
        print(Self.text)
    }
}
