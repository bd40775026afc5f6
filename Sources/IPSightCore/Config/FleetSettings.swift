import Glibc

/// The `[fleet]` section of the agent's config file: where the shared PostgreSQL
/// is and how to reach it. Plain values only, so the agent's config parser can
/// validate the section without depending on a database driver (the `Fleet`
/// module turns these settings into connections).
public struct FleetSettings: Sendable, Equatable {
    /// A TCP host and port, or the Unix socket file (`DIR/.s.PGSQL.PORT`, as libpq names it).
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unixSocket(path: String)
    }

    /// Where the password is read at connect time; never the password itself, so a
    /// config file (often world-readable) holds no secret.
    public enum Password: Sendable, Equatable {
        /// No password: peer or trust authentication (a local Unix socket).
        case none
        case file(String)
        case environment(String)
    }

    public enum TLSMode: String, Sendable, Equatable {
        /// Encrypted, the server's certificate not checked (it may be self-signed).
        case require
        /// Encrypted, the certificate checked against the system's CAs and the host name.
        case verifyFull = "verify-full"
        /// Plain text: loopback and Unix sockets only.
        case off
    }

    public var user: String
    public var database: String
    public var endpoint: Endpoint
    public var password: Password = .none
    public var tls: TLSMode
    /// With verify-full: the CA certificates (PEM) to trust instead of the system's,
    /// for a server whose certificate a private CA signed.
    public var tlsCA: String?
    /// Whether this agent may take the trainer lock and publish models.
    public var trainer = true
    /// How this agent names itself in the fleet (its rows, its heartbeat).
    public var hostName: String
    /// The line of each key (`fleet.password`, ...), for errors found later (a password file that cannot be read).
    public var lines: [String: Int] = [:]

    public init(user: String, database: String, endpoint: Endpoint, password: Password = .none,
                tls: TLSMode? = nil, trainer: Bool = true, hostName: String = FleetSettings.machineHostName()) {
        self.user = user
        self.database = database
        self.endpoint = endpoint
        self.password = password
        self.tls = tls ?? (endpoint.isLocal ? .off : .verifyFull)
        self.trainer = trainer
        self.hostName = hostName
    }

    /// One `key = value` line of the section.
    public struct Entry: Sendable {
        public var key: String
        public var value: String
        public var line: Int
        public init(key: String, value: String, line: Int) {
            self.key = key
            self.value = value
            self.line = line
        }
    }

    /// What is wrong with the section, and on which line (nil: the section as a whole).
    public struct Problem: Error, Equatable, CustomStringConvertible {
        public var line: Int?
        /// `fleet.KEY`, as config errors name keys.
        public var key: String
        public var message: String
        public var description: String { (line.map { "line \($0): " } ?? "") + "\(key): \(message)" }
    }

    /// Validates the section's entries; every problem names its line.
    public static func parse(_ entries: [Entry], defaultHostName: String = FleetSettings.machineHostName()) throws(Problem) -> FleetSettings {
        func problem(_ e: Entry, _ message: String) -> Problem { Problem(line: e.line, key: "fleet.\(e.key)", message: message) }
        var url: (user: String, database: String, endpoint: Endpoint)?
        var password = Password.none
        var tls: TLSMode?
        var tlsCA: String?
        var trainer = true
        var hostName = defaultHostName
        var lines: [String: Int] = [:]
        for e in entries {
            switch e.key {
            case "database":
                do { url = try parseURL(e.value) } catch { throw problem(e, error.message) }
            case "password":
                password = try parsePassword(e.value, problem: { problem(e, $0) })
            case "tls":
                guard let mode = TLSMode(rawValue: e.value) else { throw problem(e, "expected require, verify-full or off") }
                tls = mode
            case "tls_ca":
                guard e.value.hasPrefix("/") else { throw problem(e, "expected the absolute path of a PEM file of CA certificates") }
                tlsCA = e.value
            case "trainer":
                switch e.value {
                case "true", "yes", "on": trainer = true
                case "false", "no", "off": trainer = false
                default: throw problem(e, "expected true or false, not '\(e.value)'")
                }
            case "host_name":
                guard !e.value.isEmpty, e.value.utf8.count <= 253,
                      e.value.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_" }) else {
                    throw problem(e, "expected a host name (letters, digits, '-', '.', '_')")
                }
                hostName = e.value
            default:
                throw problem(e, "unknown key (expected database, password, tls, tls_ca, trainer or host_name)")
            }
            lines["fleet.\(e.key)"] = e.line
        }
        guard let url else {
            throw Problem(line: entries.first?.line, key: "fleet.database",
                          message: "missing: the section needs database = postgresql://USER@HOST:PORT/DB")
        }
        if let tls, let line = lines["fleet.tls"] {
            switch (url.endpoint, tls) {
            case (.unixSocket, .require), (.unixSocket, .verifyFull):
                throw Problem(line: line, key: "fleet.tls", message: "TLS does not apply to a Unix socket: use tls = off")
            case (.tcp(let host, _), .off) where !isLoopback(host):
                throw Problem(line: line, key: "fleet.tls",
                              message: "off is allowed only for loopback addresses and Unix sockets, not for '\(host)': use require or verify-full")
            default: break
            }
        }
        var settings = FleetSettings(user: url.user, database: url.database, endpoint: url.endpoint, password: password,
                                     tls: tls, trainer: trainer, hostName: hostName)
        if let tlsCA {
            guard settings.tls == .verifyFull else {
                throw Problem(line: lines["fleet.tls_ca"], key: "fleet.tls_ca", message: "a CA is only used to verify the server: it needs tls = verify-full")
            }
            settings.tlsCA = tlsCA
        }
        settings.lines = lines
        return settings
    }

    struct URLProblem: Error { var message: String }

    /// `postgresql://USER@HOST:PORT/DB`, `postgresql://USER@[::1]/DB`, or the Unix
    /// socket form `postgresql://USER@/DB?host=/run/postgresql` (with `&port=5433`
    /// or `USER@:5433/DB` when the server is not on 5432).
    static func parseURL(_ text: String) throws(URLProblem) -> (user: String, database: String, endpoint: Endpoint) {
        let usage = "expected postgresql://USER@HOST:PORT/DB or postgresql://USER@/DB?host=/run/postgresql"
        var rest = Substring(text)
        guard let scheme = ["postgresql://", "postgres://"].first(where: { rest.hasPrefix($0) }) else { throw URLProblem(message: usage) }
        rest = rest.dropFirst(scheme.count)
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        guard let slash = rest.firstIndex(of: "/") else { throw URLProblem(message: "no database name: " + usage) }
        let authority = rest[..<slash]
        let database = String(rest[rest.index(after: slash)...])
        guard let at = authority.lastIndex(of: "@") else { throw URLProblem(message: "no user name: " + usage) }
        let userInfo = authority[..<at]
        if userInfo.contains(":") {
            throw URLProblem(message: "a password in the URL is refused: put it in a file (password = file:PATH) or the environment (password = env:NAME)")
        }
        let user = String(userInfo)
        guard isIdentifier(user) else { throw URLProblem(message: "'\(user)' is not a user name (letters, digits, '_', '-', '.')") }
        guard isIdentifier(database) else { throw URLProblem(message: "'\(database)' is not a database name (letters, digits, '_', '-', '.')") }

        var hostPort = authority[authority.index(after: at)...]
        var port = 5432
        var host = ""
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw URLProblem(message: "unterminated [IPv6 address]") }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            hostPort = hostPort[hostPort.index(after: close)...]
            guard hostPort.isEmpty || hostPort.hasPrefix(":") else { throw URLProblem(message: usage) }
        } else if let colon = hostPort.firstIndex(of: ":") {
            host = String(hostPort[..<colon])
            hostPort = hostPort[colon...]
        } else {
            host = String(hostPort)
            hostPort = ""
        }
        if hostPort.hasPrefix(":") {
            guard let p = Int(hostPort.dropFirst()), (1...65535).contains(p) else { throw URLProblem(message: "the port is not a number from 1 to 65535") }
            port = p
        }
        var socketDirectory: String?
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            switch (parts.first, parts.count) {
            case ("host", 2): socketDirectory = parts[1]
            case ("port", 2):
                guard let p = Int(parts[1]), (1...65535).contains(p) else { throw URLProblem(message: "the port is not a number from 1 to 65535") }
                port = p
            case ("sslmode", _): throw URLProblem(message: "set TLS with the tls key (require, verify-full or off), not sslmode")
            default: throw URLProblem(message: "unknown URL parameter '\(pair)' (expected host=SOCKET_DIRECTORY or port=PORT)")
            }
        }
        if let dir = socketDirectory {
            guard host.isEmpty else { throw URLProblem(message: "both a host and ?host=: name a host or a socket directory, not both") }
            guard dir.hasPrefix("/") else { throw URLProblem(message: "?host= must be the absolute path of the server's socket directory") }
            return (user, database, .unixSocket(path: "\(dir)/.s.PGSQL.\(port)"))
        }
        guard !host.isEmpty else { throw URLProblem(message: "no host: name one, or a socket directory with ?host=/run/postgresql") }
        guard isHostName(host) else { throw URLProblem(message: "'\(host)' is not a host name or address") }
        return (user, database, .tcp(host: host, port: port))
    }

    static func parsePassword(_ value: String, problem: (String) -> Problem) throws(Problem) -> Password {
        if value.hasPrefix("file:") {
            let path = String(value.dropFirst(5))
            guard path.hasPrefix("/") else { throw problem("file: needs an absolute path, as in file:/etc/ipsight/fleet.password") }
            return .file(path)
        }
        if value.hasPrefix("env:") {
            let name = String(value.dropFirst(4))
            guard let first = name.first, first == "_" || (first.isASCII && first.isLetter),
                  name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }) else {
                throw problem("env: needs an environment variable's name, as in env:IPSIGHT_FLEET_PASSWORD")
            }
            return .environment(name)
        }
        throw problem("an inline password is refused (config files are often readable by all): use file:PATH or env:NAME")
    }

    private static func isIdentifier(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 63 && s.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "_" || $0 == "-" || $0 == "." }
    }

    private static func isHostName(_ s: String) -> Bool {
        if IPAddress(s) != nil { return true }
        return s.utf8.count <= 253 && s.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "." }
    }

    /// `localhost`, or a literal address in 127.0.0.0/8 or ::1 (`127.evil.example` is a name, not loopback).
    public static func isLoopback(_ host: String) -> Bool {
        if host.lowercased() == "localhost" { return true }
        guard let address = IPAddress(host) else { return false }
        return address == IPAddress("::1") || address.ipv4.map { $0 >> 24 == 127 } == true
    }

    /// This machine's host name (`gethostname`), the default `host_name`.
    public static func machineHostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(cString: buffer)
        return name.isEmpty ? "localhost" : name
    }
}

extension FleetSettings.Endpoint {
    /// Whether plain text cannot leave this machine: a Unix socket or a loopback address.
    public var isLocal: Bool {
        switch self {
        case .unixSocket: return true
        case .tcp(let host, _): return FleetSettings.isLoopback(host)
        }
    }
}
