import IPSightCore
import Glibc
import Foundation

/// A small blocking HTTP/1.1 client for the agent's API, over its Unix socket or
/// TCP, with one deadline for the whole exchange: `ipsight check` runs inside a
/// login (PAM), where waiting long is worse than an answer of "unknown".
public struct AgentClient: Sendable {
    public enum Endpoint: Sendable, CustomStringConvertible {
        case unix(String)
        case tcp(host: String, port: Int)
        public var description: String {
            switch self {
            case .unix(let path): "unix:\(path)"
            case .tcp(let host, let port): "http://\(host):\(port)"
            }
        }
    }

    public struct Reply: Sendable {
        public var status: Int
        public var body: [UInt8]
    }

    public let endpoint: Endpoint
    public let timeout: Double
    public let token: String?

    public init(endpoint: Endpoint, timeout: Double = 1, token: String? = nil) {
        self.endpoint = endpoint
        self.timeout = timeout
        self.token = token
    }

    public func request(_ method: String, _ path: String, json body: [UInt8]? = nil) throws(AgentClientError) -> Reply {
        let deadline = Clock.now + timeout
        let fd = try connect(deadline: deadline)
        defer { close(fd) }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nUser-Agent: ipsight\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        head += "\r\n"
        try send(fd, Array(head.utf8) + (body ?? []), deadline: deadline)
        let raw = try receive(fd, deadline: deadline)
        return try AgentClient.parse(raw, endpoint: endpoint)
    }

    private func connect(deadline: Double) throws(AgentClientError) -> Int32 {
        switch endpoint {
        case .unix(let path):
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { throw AgentClientError.unreachable(endpoint, "socket: \(errnoText())") }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
                close(fd)
                throw AgentClientError.unreachable(endpoint, "socket path too long")
            }
            withUnsafeMutableBytes(of: &address.sun_path) { buffer in
                for (i, b) in bytes.enumerated() { buffer[i] = b }
            }
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            try finishConnect(fd, result, deadline: deadline)
            return fd
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
                throw AgentClientError.unreachable(endpoint, "cannot resolve \(host)")
            }
            defer { freeaddrinfo(list) }
            let fd = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { throw AgentClientError.unreachable(endpoint, "socket: \(errnoText())") }
            let result = Glibc.connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen)
            try finishConnect(fd, result, deadline: deadline)
            return fd
        }
    }

    private func finishConnect(_ fd: Int32, _ result: Int32, deadline: Double) throws(AgentClientError) {
        if result == 0 { return }
        guard errno == EINPROGRESS || errno == EAGAIN else {
            let text = errnoText()
            close(fd)
            throw AgentClientError.unreachable(endpoint, text)
        }
        guard wait(fd, for: Int16(POLLOUT), deadline: deadline) != nil else {
            close(fd)
            throw AgentClientError.timedOut(endpoint)
        }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        if error != 0 {
            close(fd)
            throw AgentClientError.unreachable(endpoint, String(cString: strerror(error)))
        }
    }

    /// Sends the request; stops early when the server has already answered (a
    /// refusal such as 413 can come before the whole body is sent).
    private func send(_ fd: Int32, _ bytes: [UInt8], deadline: Double) throws(AgentClientError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n > 0 { offset += n; continue }
            if n < 0 && (errno == EPIPE || errno == ECONNRESET) { return }
            guard n < 0, errno == EAGAIN || errno == EINTR else { throw AgentClientError.unreachable(endpoint, "send: \(errnoText())") }
            guard let ready = wait(fd, for: Int16(POLLOUT) | Int16(POLLIN), deadline: deadline) else {
                throw AgentClientError.timedOut(endpoint)
            }
            if ready & Int16(POLLIN) != 0 { return }
        }
    }

    /// Reads until the server closes (the request said `Connection: close`); at most 1 MiB.
    private func receive(_ fd: Int32, deadline: Double) throws(AgentClientError) -> [UInt8] {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while data.count < 1 << 20 {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { data += chunk[0..<n]; continue }
            if n == 0 || (errno == ECONNRESET && !data.isEmpty) { return data }
            guard errno == EAGAIN || errno == EINTR else { throw AgentClientError.unreachable(endpoint, "recv: \(errnoText())") }
            guard wait(fd, for: Int16(POLLIN), deadline: deadline) != nil else { throw AgentClientError.timedOut(endpoint) }
        }
        throw AgentClientError.badReply(endpoint, "the answer is larger than 1 MiB")
    }

    /// The events that became ready, or nil at the deadline.
    private func wait(_ fd: Int32, for events: Int16, deadline: Double) -> Int16? {
        while true {
            let left = deadline - Clock.now
            if left <= 0 { return nil }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let r = poll(&p, 1, Int32(max(1, (left * 1000).rounded(.up))))
            if r > 0 { return p.revents }
            if r < 0 && errno == EINTR { continue }
            if r == 0 { return nil }
            return events
        }
    }

    /// Status line, headers, then a body of `Content-Length` bytes, chunks, or the rest.
    static func parse(_ raw: [UInt8], endpoint: Endpoint) throws(AgentClientError) -> Reply {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = raw.firstRange(of: separator) else { throw AgentClientError.badReply(endpoint, "no complete HTTP header") }
        let lines = String(decoding: raw[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw AgentClientError.badReply(endpoint, "not an HTTP status line")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(raw[end.upperBound...])
        if let length = headers["content-length"].flatMap({ Int($0) }) {
            guard body.count >= length else { throw AgentClientError.badReply(endpoint, "the body was cut short") }
            body = Array(body.prefix(length))
        } else if headers["transfer-encoding"]?.lowercased() == "chunked" {
            body = try dechunk(body, endpoint: endpoint)
        }
        return Reply(status: status, body: body)
    }

    static func dechunk(_ bytes: [UInt8], endpoint: Endpoint) throws(AgentClientError) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while true {
            guard let lineEnd = bytes[i...].firstRange(of: [13, 10]) else { throw AgentClientError.badReply(endpoint, "bad chunk") }
            let sizeText = String(decoding: bytes[i..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else {
                throw AgentClientError.badReply(endpoint, "bad chunk size")
            }
            i = lineEnd.upperBound
            if size == 0 { return out }
            guard i + size <= bytes.count else { throw AgentClientError.badReply(endpoint, "a chunk was cut short") }
            out += bytes[i..<i + size]
            i += size + 2
        }
    }
}

public enum AgentClientError: Error, CustomStringConvertible {
    case unreachable(AgentClient.Endpoint, String)
    case timedOut(AgentClient.Endpoint)
    case badReply(AgentClient.Endpoint, String)

    public var description: String {
        switch self {
        case .unreachable(let e, let why): "cannot reach the agent at \(e): \(why)"
        case .timedOut(let e): "the agent at \(e) did not answer in time"
        case .badReply(let e, let why): "the agent at \(e) answered something unreadable: \(why)"
        }
    }
}

/// Whether something listens on a Unix socket (a stale file from a dead agent does not).
public enum UnixSocketClient {
    public static func accepts(_ path: String) -> Bool {
        do {
            _ = try AgentClient(endpoint: .unix(path), timeout: 0.5).request("GET", "/ping")
            return true
        } catch {
            if case .unreachable = error { return false }
            return true
        }
    }
}

private func errnoText() -> String { String(cString: strerror(errno)) }
