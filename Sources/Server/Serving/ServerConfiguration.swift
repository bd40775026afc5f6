import Foundation

/// What `ipsight serve` was asked to do: where to listen, how much to accept, who may call.
public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// The largest request body, from `SAGEMAKER_MAX_PAYLOAD_IN_MB` (SageMaker's default is 6).
    public var maxPayloadInMB: Int
    /// What `/execution-parameters` advertises to batch transform.
    public var maxConcurrentTransforms: Int
    /// When set, every route but `/ping` needs `Authorization: Bearer <token>`.
    public var token: String?
    /// How often the model file's modification time is checked.
    public var pollInterval: Double

    public init(host: String = "127.0.0.1", port: Int = 8080, maxPayloadInMB: Int = 6,
                maxConcurrentTransforms: Int = ProcessInfo.processInfo.activeProcessorCount,
                token: String? = nil, pollInterval: Double = 1) {
        self.host = host
        self.port = port
        self.maxPayloadInMB = maxPayloadInMB
        self.maxConcurrentTransforms = max(1, maxConcurrentTransforms)
        self.token = token
        self.pollInterval = pollInterval
    }

    public var maxPayloadBytes: Int { maxPayloadInMB * 1024 * 1024 }

    /// Reads `SAGEMAKER_MAX_PAYLOAD_IN_MB`; a value that is not a positive whole number is refused.
    public static func maxPayloadInMB(environment: [String: String]) throws(ServerConfigurationError) -> Int {
        guard let text = environment["SAGEMAKER_MAX_PAYLOAD_IN_MB"] else { return 6 }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)), (1...100).contains(value) else {
            throw ServerConfigurationError("SAGEMAKER_MAX_PAYLOAD_IN_MB must be a whole number from 1 to 100, found '\(text)'")
        }
        return value
    }

    /// Whether `host` only accepts connections from this machine.
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased()
        return h == "localhost" || h == "::1" || h == "[::1]" || h.hasPrefix("127.")
    }

    /// Reads a bearer token file: one line, surrounding whitespace ignored, never empty.
    public static func readToken(path: String) throws(ServerConfigurationError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ServerConfigurationError("cannot read the token file \(path)")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, !token.contains(where: { $0.isWhitespace }) else {
            throw ServerConfigurationError("the token file \(path) must hold one token without spaces")
        }
        return token
    }
}

public struct ServerConfigurationError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
