import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTPTypes
import Synchronization

/// Keeps a listener answering under a flood of idle or half-sent connections: at
/// most `limit` connections at once (the next ones are closed on arrival), and a
/// request head must arrive within `headTimeout` of the connection or of the last
/// response, so a client that sends a byte now and then cannot hold a slot.
///
/// One guard per listener: the agent's Unix socket keeps its own slots however
/// busy its TCP port is, so `ipsight check` under PAM is still answered.
public final class ConnectionGuard: Sendable {
    public let limit: Int
    public let headTimeout: TimeAmount
    private let open = Atomic<Int>(0)
    private let refused = Atomic<Int>(0)

    public init(limit: Int = 256, headTimeout: TimeAmount = .seconds(10)) {
        self.limit = limit
        self.headTimeout = headTimeout
    }

    /// Connections open now, and refused since the start.
    public var openConnections: Int { open.load(ordering: .relaxed) }
    public var refusedConnections: Int { refused.load(ordering: .relaxed) }

    /// The HTTP/1 server with this guard and an idle timeout for keep-alive connections.
    public func server(idleTimeout: TimeAmount = .seconds(30)) -> HTTPServerBuilder {
        .http1(configuration: .init(additionalChannelHandlers: [Handler(guard: self)], idleTimeout: idleTimeout))
    }

    fileprivate func admit() -> Bool {
        let now = open.wrappingAdd(1, ordering: .relaxed).newValue
        if now > limit {
            open.wrappingSubtract(1, ordering: .relaxed)
            refused.wrappingAdd(1, ordering: .relaxed)
            return false
        }
        return true
    }

    fileprivate func leave() { open.wrappingSubtract(1, ordering: .relaxed) }

    final class Handler: ChannelDuplexHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPRequestPart
        typealias InboundOut = HTTPRequestPart
        typealias OutboundIn = HTTPResponsePart
        typealias OutboundOut = HTTPResponsePart

        private let owner: ConnectionGuard
        private var admitted = false
        private var deadline: Scheduled<Void>?

        init(guard owner: ConnectionGuard) { self.owner = owner }

        func handlerAdded(context: ChannelHandlerContext) {
            guard owner.admit() else {
                context.close(promise: nil)
                return
            }
            admitted = true
            awaitHead(context)
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            deadline?.cancel()
            deadline = nil
            if admitted {
                admitted = false
                owner.leave()
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            handlerRemoved(context: context)
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if case .head = unwrapInboundIn(data) {
                deadline?.cancel()
                deadline = nil
            }
            context.fireChannelRead(data)
        }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            if case .end = unwrapOutboundIn(data) { awaitHead(context) }
            context.write(data, promise: promise)
        }

        /// The next request's head must come within the timeout.
        private func awaitHead(_ context: ChannelHandlerContext) {
            deadline?.cancel()
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(in: owner.headTimeout) {
                loopBound.value.close(promise: nil)
            }
        }
    }
}
