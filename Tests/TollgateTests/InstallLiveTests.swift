import Foundation
import TestSupport
import Testing

/// `make install` / `make uninstall` (README, "Install"; SPEC §8) into a temporary
/// DESTDIR with the debug products already built: the layout, the installed `tollgate
/// check` finding the installed plugins with no configuration of their path, the
/// unit's paths, the man page against every `--help`, and an uninstall that removes
/// what install put there and nothing else.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(2))) struct InstallLiveTests {
        static var root: String {
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        }

        /// Every regular file and symbolic link under `folder`, relative to it.
        static func files(_ folder: String) -> Set<String> {
            guard let walker = FileManager.default.enumerator(atPath: folder) else { return [] }
            var found = Set<String>()
            while let path = walker.nextObject() as? String {
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: folder + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue { found.insert(path) }
            }
            return found
        }

        /// The products installed: those next to the test bundle (debug, in `make test`),
        /// or with `TOLLGATE_INSTALL_CONFIG=release` the release build in `.build/release`
        /// (`make test-install-release`: what `make install` ships).
        static var products: (config: String, folder: String) {
            if ProcessInfo.processInfo.environment["TOLLGATE_INSTALL_CONFIG"] == "release" { return ("release", root + "/.build/release") }
            return ("debug", (RelayProcess.binary as NSString).deletingLastPathComponent)
        }

        static func make(_ target: String, _ dest: String, group: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
            let extra = group.map { ["TOLLGATE_GROUP=\($0)"] } ?? []
            return try ChildProcess.run(
                "make", ["-s", "-C", root, target, "DESTDIR=\(dest)", "PREFIX=/usr/local", "CONFIG=\(products.config)", "BUILD=no", "BINDIR=\(products.folder)"] + extra, timeout: 60
            )
        }

        /// The binary installed is the one built (a release install test that installed
        /// debug products would prove nothing).
        @Test func theInstalledBinaryIsTheBuiltOne() throws {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            #expect(try Self.make("install", dir.path + "/dest").status == 0)
            let built = try #require(FileManager.default.contents(atPath: Self.products.folder + "/tollgate"), "no \(Self.products.folder)/tollgate: build it first")
            #expect(FileManager.default.contents(atPath: dir.path + "/dest/usr/local/bin/tollgate") == built)
        }

        /// The unit runs as `tollgate`: with that group present, the configuration is its
        /// (folders 0750, files 0640); without it, install says how to create the user.
        /// `nogroup` stands in for the service's group, which this machine need not have.
        @Test func theConfigurationIsReadableByTheServicesGroup() throws {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let dest = dir.path + "/dest"
            let install = try Self.make("install", dest, group: "nogroup")
            #expect(install.status == 0, "\(install.stderr)")
            let etc = dest + "/usr/local/etc/tollgate"
            func owner(_ path: String) -> (group: String, mode: Int) {
                let attributes = (try? FileManager.default.attributesOfItem(atPath: path)) ?? [:]
                return ((attributes[.groupOwnerAccountName] as? String) ?? "?", (attributes[.posixPermissions] as? Int) ?? -1)
            }
            for folder in [etc, etc + "/policies"] { #expect(owner(folder) == ("nogroup", 0o750), "\(folder): \(owner(folder))") }
            #expect(owner(etc + "/tollgate.yaml") == ("nogroup", 0o640))
            for policy in (try FileManager.default.contentsOfDirectory(atPath: etc + "/policies")) {
                #expect(owner(etc + "/policies/" + policy) == ("nogroup", 0o640), "\(policy)")
            }
            let other = try TemporaryDirectory()
            defer { other.remove() }
            let without = try Self.make("install", other.path + "/dest", group: "no-such-group-tollgate")
            #expect(without.status == 0 && without.stdout.contains("useradd --system --user-group"), "\(without.stdout)")
        }

        @Test func installCheckAndUninstall() throws {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let dest = dir.path + "/dest"
            let prefix = dest + "/usr/local"
            // Someone else's files in the same folders: uninstall must leave them.
            let foreign = ["usr/local/bin/other-tool", "usr/local/lib/systemd/system/other.service", "usr/local/share/man/man8/other.8", "usr/local/etc/tollgate/local-notes.txt"]
            for path in foreign {
                try FileManager.default.createDirectory(atPath: ((dest + "/" + path) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try TestFiles.write(Array("not tollgate's\n".utf8), to: dest + "/" + path)
            }

            let installed = try Self.make("install", dest)
            #expect(installed.status == 0, "\(installed.stdout)\(installed.stderr)")
            let plugins = ["ldap", "sender-allowlist", "rate-limit", "dkim"].map { "usr/local/lib/tollgate/plugins/libtollgate-\($0).so" }
            let layout = ["usr/local/bin/tollgate", "usr/local/lib/tollgate/libTollgatePolicy.so", "usr/local/lib/systemd/system/tollgate.service", "usr/local/share/man/man8/tollgate.8", "usr/local/etc/tollgate/tollgate.yaml"]
                + ["engineering", "finance", "sales"].map { "usr/local/etc/tollgate/policies/\($0).yaml" } + plugins
            let after = Self.files(dest)
            for path in layout { #expect(after.contains(path), "\(path) not installed: \(after.sorted())") }

            // The unit names the installed paths.
            let unit = TestFiles.readString(prefix + "/lib/systemd/system/tollgate.service") ?? ""
            #expect(unit.contains("ExecStart=/usr/local/bin/tollgate serve -c /usr/local/etc/tollgate/tollgate.yaml\n"), "\(unit)")
            #expect(unit.contains("ExecStartPre=/usr/local/bin/tollgate check -c /usr/local/etc/tollgate/tollgate.yaml\n"))
            #expect(unit.contains("Type=notify") && unit.contains("ExecReload=/bin/kill -HUP $MAINPID"))

            // The installed binary, run from elsewhere, finds the installed plugins by itself.
            let tollgate = prefix + "/bin/tollgate"
            let check = try ChildProcess.run(tollgate, ["check", "-c", prefix + "/etc/tollgate/tollgate.yaml"], timeout: 30, environment: ["PATH": "/usr/bin:/bin"], workingDirectory: dir.path)
            #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
            #expect(!check.stdout.isEmpty)
            // With no -c, no $TOLLGATE_CONFIG and no ./tollgate.yaml, it reads the installed
            // configuration beside it (PREFIX/etc/tollgate), not /etc/tollgate.
            let bare = try ChildProcess.run(tollgate, ["check"], timeout: 30, environment: ["PATH": "/usr/bin:/bin"], workingDirectory: dir.path)
            #expect(bare.status == 0 && bare.stdout.hasPrefix(prefix + "/etc/tollgate/tollgate.yaml: OK\n"), "\(bare.stdout)\(bare.stderr)")

            // The man page covers every command and option `--help` shows, and no other option.
            let man = (TestFiles.readString(prefix + "/share/man/man8/tollgate.8") ?? "").replacingOccurrences(of: "\\-", with: "-")
            var helpOptions = Set<String>()
            var commands: [[String]] = [[]]
            var index = 0
            while index < commands.count {
                let path = commands[index]
                index += 1
                let help = try ChildProcess.run(tollgate, path + ["--help"], timeout: 10)
                #expect(help.status == 0, "\(path): \(help.stderr)")
                let (subcommands, options) = Self.parseHelp(help.stdout)
                helpOptions.formUnion(options)
                commands += subcommands.map { path + [$0] }
                if !path.isEmpty {
                    #expect(man.contains(".B \(path.last!)\n"), "the man page has no entry for '\(path.joined(separator: " "))'")
                    #expect(man.contains("tollgate \(path.joined(separator: " "))") || path.count > 1 && man.contains("tollgate \(path.dropLast().joined(separator: " "))"), "\(path)")
                }
                for option in options { #expect(Self.mentions(man, option), "the man page does not name \(option) (of tollgate \(path.joined(separator: " ")))") }
            }
            #expect(commands.count >= 15, "\(commands)")
            let manOptions = Self.options(in: man)
            #expect(manOptions.subtracting(helpOptions).isEmpty, "the man page names options tollgate does not have: \(manOptions.subtracting(helpOptions).sorted())")

            let removed = try Self.make("uninstall", dest)
            #expect(removed.status == 0, "\(removed.stdout)\(removed.stderr)")
            #expect(Self.files(dest) == Set(foreign), "left after uninstall: \(Self.files(dest).subtracting(foreign).sorted())")
            #expect(!FileManager.default.fileExists(atPath: prefix + "/lib/tollgate"))
        }

        /// A second install keeps an edited configuration; uninstall keeps it too.
        @Test func anEditedConfigurationSurvivesInstallAndUninstall() throws {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let dest = dir.path + "/dest"
            #expect(try Self.make("install", dest).status == 0)
            let config = dest + "/usr/local/etc/tollgate/tollgate.yaml"
            let edited = (TestFiles.readString(config) ?? "") + "# edited by the operator\n"
            try TestFiles.write(Array(edited.utf8), to: config)
            let again = try Self.make("install", dest)
            #expect(again.status == 0 && again.stdout.contains("kept \(config) (exists)"), "\(again)")
            #expect(TestFiles.readString(config) == edited)
            let removed = try Self.make("uninstall", dest)
            #expect(removed.status == 0 && removed.stdout.contains("kept \(config) (changed)"), "\(removed)")
            #expect(Self.files(dest) == ["usr/local/etc/tollgate/tollgate.yaml"])
        }

        /// The subcommands and options of one ArgumentParser `--help`.
        static func parseHelp(_ text: String) -> (subcommands: [String], options: Set<String>) {
            var section = ""
            var subcommands: [String] = []
            var options = Set<String>()
            for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
                if !line.hasPrefix(" "), line.hasSuffix(":") {
                    section = line
                    continue
                }
                if line.isEmpty { section = "" }
                let trimmed = line.drop { $0 == " " }
                if section == "SUBCOMMANDS:", line.hasPrefix("  "), !line.hasPrefix("   "), let name = trimmed.split(separator: " ").first, !trimmed.hasPrefix("See ") {
                    subcommands.append(String(name))
                }
                if section == "OPTIONS:", line.hasPrefix("  -") {
                    // "-c, --config <config>  help": the names before the help text.
                    let names = trimmed.components(separatedBy: "  ")[0]
                    options.formUnion(Self.options(in: names))
                }
            }
            return (subcommands, options)
        }

        /// `-x` and `--name` tokens: a dash not after a letter, digit or dash.
        static func options(in text: String) -> Set<String> {
            var found = Set<String>()
            let chars = Array(text)
            var i = 0
            while i < chars.count {
                if chars[i] == "-", i == 0 || !(chars[i - 1].isLetter || chars[i - 1].isNumber || chars[i - 1] == "-" || chars[i - 1] == "\\") {
                    var j = i + 1
                    if j < chars.count, chars[j] == "-" { j += 1 }
                    let start = j
                    while j < chars.count, chars[j].isLowercase || chars[j] == "-" { j += 1 }
                    if j > start, chars[start].isLowercase { found.insert(String(chars[i..<j])) }
                    i = j
                } else {
                    i += 1
                }
            }
            return found
        }

        static func mentions(_ text: String, _ option: String) -> Bool { options(in: text).contains(option) }
    }
}
