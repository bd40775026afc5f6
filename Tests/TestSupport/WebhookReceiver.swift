import Foundation

/// `shared/bench/webhook_sink.py` as a subprocess on 127.0.0.1: records each POST
/// as a JSON line and checks Standard Webhooks signatures with `secret`.
/// `delayMilliseconds` holds every answer that long (a slow receiver); for a
/// receiver slow on some alerts only, see `ScriptedWebhookReceiver`.
public final class WebhookReceiver {
    public let port: Int
    public let output: String
    private let process = Process()

    public init(port: Int, output: String, secret: String, failFirst: Int = 0, delayMilliseconds: Int = 0) throws {
        self.port = port
        self.output = output
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [PackagePaths.bench + "/webhook_sink.py", "--port", String(port), "--out", output,
                             "--secret", secret, "--fail-first", String(failFirst), "--delay-ms", String(delayMilliseconds)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline, !Self.listening(port) { usleep(50_000) }
        guard Self.listening(port) else {
            stop()
            throw SupportError("webhook_sink.py did not listen on 127.0.0.1:\(port)")
        }
    }

    public static func listening(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// Every request received so far, as webhook_sink.py recorded it.
    public func records() -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: output, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// The alerts received (the `data` of each Standard Webhooks envelope).
    public func alerts() -> [[String: Any]] {
        records().compactMap { ($0["body"] as? [String: Any])?["data"] as? [String: Any] }
    }

    /// Waits until `done` holds for the records, or the deadline passes.
    @discardableResult
    public func wait(seconds: Double = 30, until done: ([[String: Any]]) -> Bool) -> [[String: Any]] {
        let deadline = Date().addingTimeInterval(seconds)
        var seen = records()
        while !done(seen) && Date() < deadline {
            usleep(100_000)
            seen = records()
        }
        return seen
    }

    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    deinit { stop() }
}

/// A webhook receiver in the test process, on 127.0.0.1 (real TCP and HTTP/1.1), that
/// answers each request as `answer` says: after a delay (a receiver slow or hanging on
/// some alerts only), with a status of its own. Requests are told apart by their
/// `webhook-id` header (the alert id). Call `stop` when done: it closes the listener
/// and ends every request still held.
public final class ScriptedWebhookReceiver: @unchecked Sendable {
    public struct Answer: Sendable {
        public var status: Int
        /// Seconds before answering; `.infinity` holds the request until `stop`.
        public var delay: Double
        public init(status: Int = 200, delay: Double = 0) {
            self.status = status
            self.delay = delay
        }
        public static let ok = Answer()
        public static let hang = Answer(delay: .infinity)
    }

    public struct Request: Sendable {
        public var id: String
        /// Seconds since the receiver started.
        public var arrived: Double
        /// The status sent, nil while the request is held (or if the client left first).
        public var status: Int?
        public var body: String
    }

    public let port: Int
    public var url: String { "http://127.0.0.1:\(port)/hook" }
    private let listener: Int32
    private let answer: @Sendable (_ id: String, _ attempt: Int) -> Answer
    private let lock = NSCondition()
    private var log: [Request] = []
    private var stopped = false
    private let started = Date()

    /// `answer` gets the alert id and how many requests for it came before (0 for the first).
    public init(answer: @escaping @Sendable (_ id: String, _ attempt: Int) -> Answer) throws {
        self.answer = answer
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound, listen(fd, 64) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw SupportError("cannot listen on 127.0.0.1: \(message)")
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Every request so far, in arrival order.
    public func requests() -> [Request] { lock.withLock { log } }

    /// The requests for one alert id.
    public func requests(for id: String) -> [Request] { requests().filter { $0.id == id } }

    /// Waits until `done` holds for the requests, or `seconds` pass; returns what was seen.
    @discardableResult
    public func wait(seconds: Double = 30, until done: ([Request]) -> Bool) -> [Request] {
        let deadline = Date().addingTimeInterval(seconds)
        var seen = requests()
        while !done(seen) && Date() < deadline {
            usleep(20_000)
            seen = requests()
        }
        return seen
    }

    /// Closes the listener and ends held requests without an answer.
    public func stop() {
        lock.withLock {
            guard !stopped else { return }
            stopped = true
            lock.broadcast()
            // shutdown(2) wakes the accept(2) blocked on the listener.
            shutdown(listener, Int32(SHUT_RDWR))
        }
    }

    private func acceptLoop() {
        defer { close(listener) }
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            if lock.withLock({ stopped }) {
                close(client)
                return
            }
            let thread = Thread { [self] in serve(client) }
            thread.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard let (headers, body) = Self.readRequest(fd) else { return }
        let id = headers["webhook-id"] ?? ""
        let arrived = Date().timeIntervalSince(started)
        let (index, attempt) = lock.withLock { () -> (Int, Int) in
            let attempt = log.filter { $0.id == id }.count
            log.append(Request(id: id, arrived: arrived, status: nil, body: body))
            return (log.count - 1, attempt)
        }
        let reply = answer(id, attempt)
        let answered = lock.withLock { () -> Bool in
            let until = Date().addingTimeInterval(min(reply.delay, 86_400))
            while !stopped && Date() < until { lock.wait(until: until) }
            if stopped { return false }
            log[index].status = reply.status
            return true
        }
        guard answered else { return }
        let response = Array("HTTP/1.1 \(reply.status) Scripted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
        _ = response.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// The header fields (names in lower case) and the body of one request.
    private static func readRequest(_ fd: Int32) -> ([String: String], String)? {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        var headerEnd: Int? = nil
        var contentLength = 0
        while true {
            if let end = headerEnd, data.count >= end + contentLength { break }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return nil }
            data.append(contentsOf: buffer[0..<n])
            if headerEnd == nil, let range = data.firstRange(of: Array("\r\n\r\n".utf8)) {
                headerEnd = range.upperBound
                let head = String(decoding: data[0..<range.lowerBound], as: UTF8.self)
                for line in head.split(separator: "\r\n").dropFirst() {
                    let parts = line.split(separator: ":", maxSplits: 1)
                    if parts.count == 2, parts[0].lowercased() == "content-length" {
                        contentLength = Int(parts[1].trimmingCharacters(in: .whitespaces)) ?? 0
                    }
                }
            }
        }
        let end = headerEnd!
        var headers: [String: String] = [:]
        for line in String(decoding: data[0..<end], as: UTF8.self).split(separator: "\r\n").dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { headers[parts[0].lowercased()] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return (headers, String(decoding: data[end..<(end + contentLength)], as: UTF8.self))
    }
}
