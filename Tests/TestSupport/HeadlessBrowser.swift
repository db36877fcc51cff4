import Foundation

/// Headless Chromium driven through the DevTools protocol (`Resources/browser.py`,
/// Debian's `chromium` and `python3-websocket`): a list of steps in, one result each out.
public enum HeadlessBrowser {
    public enum Step: Sendable {
        /// Load a URL; the result is the URL after redirects.
        case go(String)
        /// Evaluate JavaScript in the page; the result is its value.
        case eval(String)
        /// Evaluate JavaScript that submits a form, and wait for the next page.
        case submit(String)
        /// Write a PNG of the whole page.
        case screenshot(String)

        var json: [String: String] {
            switch self {
            case .go(let url): ["go": url]
            case .eval(let js): ["eval": js]
            case .submit(let js): ["submit": js]
            case .screenshot(let path): ["screenshot": path]
            }
        }
    }

    public static var scriptPath: String {
        let source = #filePath
        return source[..<(source.lastIndex(of: "/") ?? source.startIndex)] + "/Resources/browser.py"
    }

    public static var isAvailable: Bool {
        guard ExecutableLookup.find("chromium") != nil, let python = RawSMTPSink.python else { return false }
        return (try? ChildProcess.run(python, ["-c", "import websocket"], timeout: 30))?.status == 0
    }

    /// Runs the steps in one browser session (cookies kept between them).
    public static func run(_ steps: [Step], timeout: Double = 120) throws -> [Any] {
        guard let python = RawSMTPSink.python else { throw TestSupportError(.notFound, "python3 is not installed") }
        let folder = try TemporaryDirectory(label: "browser")
        defer { folder.remove() }
        let input = folder.file("steps.json")
        try JSONSerialization.data(withJSONObject: steps.map(\.json)).write(to: URL(fileURLWithPath: input))
        let result = try ChildProcess.run("/bin/sh", ["-c", "exec '\(python)' '\(scriptPath)' < '\(input)'"], timeout: timeout)
        guard result.status == 0 else {
            throw TestSupportError(.processFailed, "browser.py exited with \(result.status): \(result.stderr.suffix(2000))")
        }
        let parsed = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
        return parsed as? [Any] ?? []
    }
}
