import Foundation
import Hummingbird
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle
import TollgateConfiguration
import TollgateSpool

/// The web console (SPEC §8, `console:`): the queue with filters and paging, each
/// message's envelope, recipients, attempts and decision trace, and the relay's
/// statistics; administrators from `console.users` sign in to hold, release, retry,
/// bounce and delete. Without `users` every action is refused (403).
///
/// Server-rendered HTML on Hummingbird, no script needed. Every value that comes from
/// mail or a client is escaped (``HTML/escape(_:)``); forms carry a per-session CSRF
/// token; the session cookie is `Secure; HttpOnly; SameSite=Strict`; pages are sent
/// with a Content-Security-Policy that allows no script and no framing.
public final class ConsoleServer: Service, Sendable {
    let configuration: TollgateConfiguration.Console
    let spool: any Spool
    let statistics: (any ConsoleStatistics)?
    let logger: Logger
    let users: NIOLockedValueBox<ConsoleUsers?>
    /// `delivery.default_upstream`: where messages without a route go (the upstream
    /// filter and column count them under it).
    let defaultUpstream: NIOLockedValueBox<String?>
    let sessions: ConsoleSessions
    let throttle = SignInThrottle()
    /// bcrypt checks running now: past ``maxVerifying`` a sign-in is answered 503 at
    /// once, so a flood of sign-ins cannot take every core from the mail.
    let verifying = NIOLockedValueBox(0)
    static let maxVerifying = 2
    let clock: @Sendable () -> Double
    /// The bound port, once listening (`console.address` may say port 0 in tests).
    public let boundPort = NIOLockedValueBox<Int?>(nil)

    public init(
        configuration: TollgateConfiguration.Console, spool: any Spool, users: ConsoleUsers?, defaultUpstream: String? = nil,
        statistics: (any ConsoleStatistics)? = nil, logger: Logger, clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) {
        self.configuration = configuration
        self.spool = spool
        self.statistics = statistics
        self.logger = logger
        self.users = NIOLockedValueBox(users)
        self.defaultUpstream = NIOLockedValueBox(defaultUpstream)
        self.sessions = ConsoleSessions(timeout: configuration.sessionTimeout)
        self.clock = clock
    }

    /// A reload read the users file again: sessions of users no longer in it end at
    /// their next request. The default upstream may have changed too.
    public func reload(users: ConsoleUsers?, defaultUpstream: String?) {
        self.users.withLockedValue { $0 = users }
        self.defaultUpstream.withLockedValue { $0 = defaultUpstream }
    }

    public func run() async throws {
        let router = Router(context: ConsoleRequestContext.self)
        router.add(middleware: SecurityHeaders())
        router.add(middleware: HostCheck(allowed: Self.allowedHosts(configuration)))
        router.get("/") { request, _ in try await self.queuePage(request) }
        router.get("/message/:id") { request, context in try await self.messagePage(request, id: context.parameters.require("id")) }
        router.get("/stats") { request, _ in await self.statisticsPage(request) }
        router.get("/signin") { request, _ in self.signInPage(request) }
        router.post("/signin") { request, context in try await self.signIn(request, from: context.clientAddress) }
        router.post("/signout") { request, _ in try await self.signOut(request) }
        router.post("/message/:id/:action") { request, context in
            try await self.act(request, id: context.parameters.require("id"), action: context.parameters.require("action"))
        }
        let boundPort = self.boundPort
        let logger = self.logger
        let application = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port
                boundPort.withLockedValue { $0 = port }
                logger.info("console listening", metadata: ["console.address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
            },
            logger: logger
        )
        try await application.run()
    }

    // MARK: - Who is asking

    static let sessionCookie = "tollgate_session"
    static let signInCookie = "tollgate_signin"

    struct Viewer {
        var user: String?
        var csrf: String?
        var readOnly: Bool
    }

    func viewer(_ request: Request) -> Viewer {
        let current = users.withLockedValue { $0 }
        guard let current else { return Viewer(user: nil, csrf: nil, readOnly: true) }
        let session = sessions.session(request.cookies[Self.sessionCookie]?.value, now: clock()) { user, hash in current.hash(of: user) == hash }
        return Viewer(user: session?.user, csrf: session?.csrf, readOnly: false)
    }

    // MARK: - Pages

    func queuePage(_ request: Request) async throws -> Response {
        let viewer = viewer(request)
        let query = request.uri.queryParameters
        var filter = ConsoleFilter(defaultUpstream: defaultUpstream.withLockedValue { $0 })
        if let state = query.get("state"), !state.isEmpty { filter.state = QueueState(rawValue: state) }
        for (key, path) in [("user", \ConsoleFilter.user), ("department", \.department), ("sender", \.sender), ("recipient", \.recipient), ("upstream", \.upstream)] {
            if let value = query.get(key)?.trimmingCharacters(in: .whitespaces), !value.isEmpty { filter[keyPath: path] = value }
        }
        let offset = max(0, query.get("offset").flatMap(Int.init) ?? 0)
        let limit = min(500, max(1, query.get("limit").flatMap(Int.init) ?? 50))
        do {
            let page = try await ConsoleFilter.page(spool, filter, offset: offset, limit: limit)
            return ConsolePages.response(.ok, ConsolePages.queue(page: page, filter: filter, offset: offset, limit: limit, now: clock(), viewer: viewer))
        } catch {
            logger.warning("console: cannot read the queue", metadata: ["error.message": "\(ErrorText.describe(error))"])
            return ConsolePages.response(.serviceUnavailable, ConsolePages.problem("The queue cannot be read right now; the relay's log says why.", viewer: viewer))
        }
    }

    func messagePage(_ request: Request, id: String) async throws -> Response {
        let viewer = viewer(request)
        if let message = try await spool.load(id) {
            return ConsolePages.response(.ok, ConsolePages.message(message, attempts: try await spool.attempts(id), viewer: viewer))
        }
        if let done = try await spool.history(id) {
            return ConsolePages.response(.ok, ConsolePages.history(done, attempts: try await spool.attempts(id), viewer: viewer))
        }
        return ConsolePages.response(.notFound, ConsolePages.problem("No message \(id) in the queue, and none delivered or bounced within spool.history.", viewer: viewer))
    }

    func statisticsPage(_ request: Request) async -> Response {
        let viewer = viewer(request)
        guard let statistics else {
            return ConsolePages.response(.ok, ConsolePages.problem("No statistics are kept by this relay.", viewer: viewer))
        }
        // A key the rate limits do not have is a mistake in the address, said as such,
        // not a listing of every counter that looks like the filtered one.
        // An empty one (`/stats?key=`, a form sent with nothing chosen) lists them all.
        let key = request.uri.queryParameters["key"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        if let key, !ConsoleStatisticsSnapshot.counterKeys.contains(key) {
            let known = ConsoleStatisticsSnapshot.counterKeys.joined(separator: ", ")
            return ConsolePages.response(.badRequest, ConsolePages.problem("No counter key \(key): the keys are \(known).", viewer: viewer))
        }
        return ConsolePages.response(.ok, ConsolePages.statistics(await statistics.snapshot(now: clock(), counterKey: key), viewer: viewer))
    }

    func signInPage(_ request: Request, failed: Bool = false) -> Response {
        let viewer = viewer(request)
        guard !viewer.readOnly else { return ConsolePages.response(.forbidden, ConsolePages.readOnlyRefusal(viewer: viewer)) }
        // Login CSRF: the form's token must match a cookie only this origin could set.
        let token = ConsoleSessions.token()
        var response = ConsolePages.response(failed ? .unauthorized : .ok, ConsolePages.signIn(token: token, failed: failed, viewer: viewer))
        response.setCookie(Self.cookie(Self.signInCookie, token, maxAge: 600))
        return response
    }

    // MARK: - Forms

    struct SignInForm: Decodable {
        var username: String
        var password: String
        var csrf: String
    }

    struct ActionForm: Decodable {
        var csrf: String
    }

    func form<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T? {
        var request = request
        let body = try await request.collectBody(upTo: 16 * 1024)
        return try? URLEncodedFormDecoder().decode(T.self, from: String(buffer: body))
    }

    func signIn(_ request: Request, from address: String) async throws -> Response {
        let current = users.withLockedValue { $0 }
        guard let current else { return ConsolePages.response(.forbidden, ConsolePages.readOnlyRefusal(viewer: Viewer(user: nil, csrf: nil, readOnly: true))) }
        guard let form = try await form(SignInForm.self, request),
            let cookie = request.cookies[Self.signInCookie]?.value, ConsoleSessions.same(form.csrf, cookie)
        else {
            return ConsolePages.response(.forbidden, ConsolePages.problem("The sign-in form has expired or did not come from this console; load it again.", viewer: viewer(request)))
        }
        guard form.username.utf8.count <= 256, form.password.utf8.count <= 1024 else {
            return ConsolePages.response(.badRequest, ConsolePages.problem("User name or password too long.", viewer: viewer(request)))
        }
        guard throttle.attempt(form.username, from: address, now: clock()) else {
            logger.warning("console sign-in refused: too many attempts", metadata: ["console.user": "\(form.username)", "client.address": "\(address)"])
            return ConsolePages.response(.tooManyRequests, ConsolePages.problem("Too many sign-ins from this address; try again in a few minutes.", viewer: viewer(request)))
        }
        let admitted = verifying.withLockedValue { n -> Bool in
            guard n < Self.maxVerifying else { return false }
            n += 1
            return true
        }
        guard admitted else {
            return ConsolePages.response(.serviceUnavailable, ConsolePages.problem("The console is busy checking other sign-ins; try again in a moment.", viewer: viewer(request)))
        }
        let verified = await current.verify(form.username, form.password)
        verifying.withLockedValue { $0 -= 1 }
        guard verified else {
            logger.notice("console sign-in failed", metadata: ["console.user": "\(form.username)", "client.address": "\(address)"])
            return signInPage(request, failed: true)
        }
        throttle.succeeded(form.username, from: address)
        let token = sessions.start(user: form.username, hash: current.hash(of: form.username) ?? "", now: clock())
        logger.notice("console sign-in", metadata: ["console.user": "\(form.username)", "client.address": "\(address)"])
        var response = Self.redirect("/")
        // No Max-Age: the server ends a session idle for console.session_timeout; the
        // browser keeps the cookie while it is in use.
        response.setCookie(Self.cookie(Self.sessionCookie, token, maxAge: nil))
        response.setCookie(Self.cookie(Self.signInCookie, "", maxAge: 0))
        return response
    }

    func signOut(_ request: Request) async throws -> Response {
        let viewer = viewer(request)
        guard let csrf = viewer.csrf, let form = try await form(ActionForm.self, request), ConsoleSessions.same(form.csrf, csrf) else {
            return ConsolePages.response(.forbidden, ConsolePages.problem("Not signed in, or the form did not come from this console.", viewer: viewer))
        }
        sessions.end(request.cookies[Self.sessionCookie]?.value)
        var response = Self.redirect("/")
        response.setCookie(Self.cookie(Self.sessionCookie, "", maxAge: 0))
        return response
    }

    /// Hold, release, retry, bounce or delete one message: only for a signed-in
    /// administrator whose form carries the session's CSRF token.
    func act(_ request: Request, id: String, action: String) async throws -> Response {
        let viewer = viewer(request)
        if viewer.readOnly { return ConsolePages.response(.forbidden, ConsolePages.readOnlyRefusal(viewer: viewer)) }
        guard let user = viewer.user, let csrf = viewer.csrf else {
            return ConsolePages.response(.forbidden, ConsolePages.problem("Sign in to act on the queue.", viewer: viewer))
        }
        guard let form = try await form(ActionForm.self, request), ConsoleSessions.same(form.csrf, csrf) else {
            logger.warning("console: an action without this session's CSRF token was refused", metadata: ["console.user": "\(user)", "queue.id": "\(id)"])
            return ConsolePages.response(.forbidden, ConsolePages.problem("The form did not come from this console (CSRF token missing or wrong).", viewer: viewer))
        }
        let now = clock()
        let found: [String]
        switch action {
        case "hold": found = try await spool.hold([id])
        case "release": found = try await spool.release([id], now: now)
        case "retry": found = try await spool.retry([id], now: now)
        case "bounce": found = try await spool.requestBounce([id])
        case "delete": found = try await spool.delete([id])
        default: return ConsolePages.response(.notFound, ConsolePages.problem("There is no action \(action).", viewer: viewer))
        }
        guard found.contains(id) else {
            return ConsolePages.response(.notFound, ConsolePages.problem("No message \(id) in the queue.", viewer: viewer))
        }
        logger.notice("console action", metadata: ["console.user": "\(user)", "console.action": "\(action)", "queue.id": "\(id)"])
        return Self.redirect(action == "delete" ? "/" : "/message/\(HTML.query(id))")
    }

    // MARK: - Helpers

    static func cookie(_ name: String, _ value: String, maxAge: Int?) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/", secure: true, httpOnly: true, sameSite: .strict)
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }
}

extension ConsoleServer {
    /// The names a browser may use for the console besides IP literals: `localhost`,
    /// the listening name, and `console.hostnames` (a proxy's public name).
    static func allowedHosts(_ configuration: TollgateConfiguration.Console) -> Set<String> {
        Set((["localhost", configuration.host] + configuration.hostnames).map { $0.lowercased() })
    }
}

/// Refuses a request whose `Host` is a name the console was not told of (`421`): a web
/// page whose name an attacker points at 127.0.0.1 (DNS rebinding) cannot read the
/// console from the administrator's browser. IP literals are always accepted.
/// The console's request context: Hummingbird's basic one, plus the client's address
/// (the sign-in throttle counts by it).
struct ConsoleRequestContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The client's IP address, without its port (`-` if the channel has none).
    var clientAddress: String { remoteAddress?.ipAddress ?? "-" }
}

struct HostCheck<Context: RequestContext>: RouterMiddleware {
    let allowed: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // HTTP/1's Host field is the request's authority in swift-http-types.
        let host = request.head.authority ?? ""
        guard Self.accepts(host, allowed) else {
            return Response(status: .misdirectedRequest, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: "This console does not answer to \(host); add the name to console.hostnames.\n")))
        }
        return try await next(request, context)
    }

    /// `host[:port]`, `[v6]:port`: an IP literal, or a name in `allowed`.
    static func accepts(_ authority: String, _ allowed: Set<String>) -> Bool {
        var name = Substring(authority)
        if name.hasPrefix("["), let end = name.firstIndex(of: "]") {
            var address = in6_addr()
            return inet_pton(AF_INET6, String(name[name.index(after: name.startIndex)..<end]), &address) == 1
        }
        if let colon = name.lastIndex(of: ":") { name = name[..<colon] }
        guard !name.isEmpty else { return false }
        if name.split(separator: ".").count == 4, name.split(separator: ".").allSatisfy({ UInt8($0) != nil }) { return true }
        return allowed.contains(name.lowercased())
    }
}

/// Headers on every answer: no script, no framing, no sniffing, no caching.
struct SecurityHeaders<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.contentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        response.headers[.xContentTypeOptions] = "nosniff"
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        return response
    }
}
