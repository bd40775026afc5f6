import AgentClient
import Agent
import AgentAPI
import ArgumentParser
import Server

/// How a command finds the running agent's API: its Unix socket (the default),
/// the socket a config file names, or a URL over TCP.
struct AgentClientOptions: ParsableArguments {
    @Option(help: "The agent's Unix socket (default: the config's [api] socket, else $RUNTIME_DIRECTORY/ipsight.sock or /run/ipsight/ipsight.sock).")
    var socket: String?

    @Option(help: "The agent's config file, to find its socket.")
    var config: String?

    @Option(help: "The agent's API over TCP instead of the socket, as host:port.")
    var url: String?

    @Option(help: "File with the bearer token the TCP API requires.")
    var tokenFile: String?

    @Option(help: "Seconds to wait for the whole answer.")
    var timeout: Double = 1

    func validate() throws {
        guard timeout > 0, timeout <= 60 else { throw ValidationError("--timeout must be from 0 to 60 seconds") }
    }

    func client() throws -> AgentClient {
        var token: String?
        if let tokenFile {
            do { token = try ServerConfiguration.readToken(path: tokenFile) } catch { throw ValidationError(error.description) }
        }
        if let url {
            var text = url
            if text.hasPrefix("http://") { text.removeFirst("http://".count) }
            while text.hasSuffix("/") { text.removeLast() }
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
                throw ValidationError("--url must be host:port, such as 127.0.0.1:8081")
            }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return AgentClient(endpoint: .tcp(host: host, port: port), timeout: timeout, token: token)
        }
        if let socket { return AgentClient(endpoint: .unix(socket), timeout: timeout, token: token) }
        if let config {
            let settings: AgentConfig
            do { settings = try AgentConfig.load(path: config) } catch { throw ValidationError("\(error)") }
            guard let path = settings.apiSocket else { throw ValidationError("\(config) turns the API socket off ([api] socket)") }
            return AgentClient(endpoint: .unix(path), timeout: timeout, token: token)
        }
        return AgentClient(endpoint: .unix(AgentConfig.defaultSocketPath()), timeout: timeout, token: token)
    }
}
