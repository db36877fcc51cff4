import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SMTPServer
import TollgateConfiguration
import TollgatePipeline
import TollgateSpool
import TollgateDelivery
import TollgateMetrics

/// `metrics.address`: Prometheus text at `/metrics`, `ok` at `/healthz`.
public final class MetricsServer: Sendable {
    private let metrics: RelayMetrics
    private let group: any EventLoopGroup
    private let logger: Logger
    private let health: @Sendable () async -> Bool
    private let sample: @Sendable () async -> Void
    private let extra: @Sendable ([UInt8]) async -> [UInt8]

    /// `sample` runs before each `/metrics` answer (queue sizes, listeners' counters);
    /// what `extra` answers (the stages' own metrics), given the registry's text, follows it.
    public init(metrics: RelayMetrics, group: any EventLoopGroup, logger: Logger, health: @escaping @Sendable () async -> Bool, sample: @escaping @Sendable () async -> Void = {}, extra: @escaping @Sendable ([UInt8]) async -> [UInt8] = { _ in [] }) {
        self.metrics = metrics
        self.group = group
        self.logger = logger
        self.health = health
        self.sample = sample
        self.extra = extra
    }

    public func start(host: String, port: Int) async throws -> any Channel {
        let metrics = self.metrics
        let health = self.health
        let sample = self.sample
        let extra = self.extra
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(metrics: metrics, health: health, sample: sample, extra: extra))
                }
            }
            .bind(host: host, port: port).get()
        logger.info("metrics listening", metadata: ["metrics.address": "\(channel.localAddress?.hostPort ?? "?")"])
        return channel
    }
}

final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let metrics: RelayMetrics
    let health: @Sendable () async -> Bool
    let sample: @Sendable () async -> Void
    let extra: @Sendable ([UInt8]) async -> [UInt8]
    private var path = "/"

    init(metrics: RelayMetrics, health: @escaping @Sendable () async -> Bool, sample: @escaping @Sendable () async -> Void, extra: @escaping @Sendable ([UInt8]) async -> [UInt8]) {
        self.metrics = metrics
        self.health = health
        self.sample = sample
        self.extra = extra
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = head.uri
        case .body:
            break
        case .end:
            switch path {
            case "/metrics":
                // Sampling may read the spool: off the event loop, answered on it.
                let sample = self.sample
                let extra = self.extra
                let metrics = self.metrics
                let done = context.eventLoop.makePromise(of: [UInt8].self)
                done.completeWithTask {
                    await sample()
                    let registry = metrics.exposition()
                    return registry + (await extra(registry))
                }
                done.futureResult.assumeIsolated().whenSuccess { [self] body in
                    respond(context: context, status: .ok, body: body, type: "text/plain; version=0.0.4")
                }
            case "/healthz":
                // The store may do I/O to answer: ask off the event loop, answer on it.
                let health = self.health
                let answer = context.eventLoop.makePromise(of: Bool.self)
                answer.completeWithTask { await health() }
                answer.futureResult.assumeIsolated().whenSuccess { [self] healthy in
                    respond(context: context, status: healthy ? .ok : .serviceUnavailable, body: Array((healthy ? "ok\n" : "unhealthy\n").utf8), type: "text/plain")
                }
            default:
                respond(context: context, status: .notFound, body: Array("not found\n".utf8), type: "text/plain")
            }
        }
    }

    private func respond(context: ChannelHandlerContext, status: HTTPResponseStatus, body: [UInt8], type: String) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: "\(body.count)")
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [context = NIOLoopBound(context, eventLoop: context.eventLoop)] _ in
            context.value.close(promise: nil)
        }
    }
}
