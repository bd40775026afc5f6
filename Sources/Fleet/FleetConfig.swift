import IPSightCore
import PostgresNIO
#if canImport(Glibc)
import Glibc
#endif

/// A fleet problem said in words: a password that cannot be read, a database that
/// refuses us, a schema newer than this binary.
public struct FleetError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The `[fleet]` settings made ready to connect: the password read, TLS chosen.
public struct FleetConfig: Sendable {
    public var settings: FleetSettings
    /// The config file the settings came from, for errors that name its lines.
    public var file: String
    let password: String?

    /// Reads the password from its file or environment variable (the file's
    /// trailing newline dropped); errors name the config file's line.
    public init(settings: FleetSettings, file: String = "(fleet)") throws(FleetError) {
        self.settings = settings
        self.file = file
        let at = "\(file)" + (settings.lines["fleet.password"].map { ":\($0)" } ?? "") + ": fleet.password: "
        switch settings.password {
        case .none:
            password = nil
        case .file(let path):
            let bytes: [UInt8]?
            do { bytes = try readSmallFile(path, limit: 4096) } catch { throw FleetError(at + error.description) }
            guard let bytes else { throw FleetError(at + "\(path): no such file") }
            var text = String(decoding: bytes, as: UTF8.self)
            while text.last == "\n" || text.last == "\r" || text.last == "\r\n" { text.removeLast() }
            guard !text.isEmpty else { throw FleetError(at + "\(path) is empty") }
            password = text
        case .environment(let name):
            guard let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty else {
                throw FleetError(at + "the environment variable \(name) is not set")
            }
            password = value
        }
    }

    /// The pool's configuration: a handful of connections per agent (uploads, catch-up
    /// and a status call at once), closed when idle so a thousand quiet agents do not
    /// hold a thousand server processes.
    public func clientConfiguration() throws(FleetError) -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        switch settings.endpoint {
        case .unixSocket(let path):
            configuration = .init(unixSocketPath: path, username: settings.user, password: password, database: settings.database)
        case .tcp(let host, let port):
            let tls: PostgresClient.Configuration.TLS
            switch settings.tls {
            case .off: tls = .disable
            case .require, .verifyFull: tls = .require(tlsConfiguration())
            }
            configuration = .init(host: host, port: port, username: settings.user, password: password,
                                  database: settings.database, tls: tls)
        }
        configuration.options.minimumConnections = 0
        configuration.options.maximumConnections = 4
        configuration.options.connectionIdleTimeout = .seconds(60)
        configuration.options.connectTimeout = .seconds(10)
        configuration.options.additionalStartupParameters = [("application_name", "ipsight \(settings.hostName)")]
        return configuration
    }

    /// One connection of its own, outside the pool: what the trainer lock lives on
    /// (a session lock belongs to one server process, and dies with it).
    public func connectionConfiguration() throws(FleetError) -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        switch settings.endpoint {
        case .unixSocket(let path):
            configuration = .init(unixSocketPath: path, username: settings.user, password: password, database: settings.database)
        case .tcp(let host, let port):
            let tls: PostgresConnection.Configuration.TLS
            switch settings.tls {
            case .off: tls = .disable
            case .require, .verifyFull:
                do { tls = .require(try NIOSSLContext(configuration: tlsConfiguration())) } catch {
                    throw FleetError("cannot set up TLS: \(error)")
                }
            }
            configuration = .init(host: host, port: port, username: settings.user, password: password,
                                  database: settings.database, tls: tls)
        }
        configuration.options.connectTimeout = .seconds(10)
        configuration.options.additionalStartupParameters = [("application_name", "ipsight \(settings.hostName) trainer")]
        return configuration
    }

    /// verify-full: the chain to the system's CAs (or `tls_ca`'s) and the host name
    /// (or address) checked, NIOSSL's default; require: encrypted, any certificate
    /// (a self-signed server, on a trusted network).
    func tlsConfiguration() -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if settings.tls == .require { tls.certificateVerification = .none }
        if let ca = settings.tlsCA { tls.trustRoots = .file(ca) }
        return tls
    }
}
