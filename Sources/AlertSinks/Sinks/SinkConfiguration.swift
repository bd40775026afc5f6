import CoreMetrics
import Logging

/// Builds a sink from the flat string settings of one config table, e.g.
/// `[sink.oncall] type = "pagerduty", routing_key = "file:/etc/ipsight/pd.key"`.
///
/// | type | settings |
/// |---|---|
/// | `webhook` | `url`, `secret` (optional, `file:`/`env:`; `whsec_…` or raw) |
/// | `slack`, `teams` | `url` (a secret reference: the URL is the credential) |
/// | `pagerduty` | `routing_key`, `url` (optional, defaults to the Events v2 endpoint) |
/// | `splunk` | `url`, `token`, `sourcetype`, `index` (optional) |
/// | `ecs` | `path` (a file, or `-` for standard output) |
///
/// HTTP sinks also take `timeout` (seconds, default 10).
public enum SinkConfiguration {
    public static func makeSink(name: String, settings: [String: String]) throws(SinkConfigurationError) -> any AlertSink {
        func required(_ key: String) throws(SinkConfigurationError) -> String {
            guard let value = settings[key], !value.isEmpty else { throw SinkConfigurationError(sink: name, reason: "missing \"\(key)\"") }
            return value
        }
        func secret(_ key: String) throws(SinkConfigurationError) -> Secret {
            let reference = try required(key)
            do { return try Secret(reference) } catch { throw SinkConfigurationError(sink: name, reason: "\"\(key)\": \(error)") }
        }
        func httpURL(_ text: String) throws(SinkConfigurationError) -> String {
            guard text.hasPrefix("https://") || text.hasPrefix("http://") else {
                throw SinkConfigurationError(sink: name, reason: "url must start with https:// or http://")
            }
            return text
        }
        // A misspelt key (`secrte`) would otherwise leave a sink quietly unsigned.
        let known: [String: Set<String>] = [
            "webhook": ["url", "secret"], "slack": ["url"], "teams": ["url"], "pagerduty": ["routing_key", "url"],
            "splunk": ["url", "token", "sourcetype", "index"], "ecs": ["path"],
        ]
        if let type = settings["type"], let keys = known[type] {
            let allowed = keys.union(["type"]).union(type == "ecs" ? [] : ["timeout"])
            if let unknown = settings.keys.sorted().first(where: { !allowed.contains($0) }) {
                throw SinkConfigurationError(sink: name, reason: "unknown key \"\(unknown)\" for type \(type) (\(allowed.sorted().joined(separator: ", ")))")
            }
        }
        var poster = HTTPPoster()
        if let timeout = settings["timeout"] {
            guard let seconds = Double(timeout), seconds >= 0.1, seconds <= 300 else {
                throw SinkConfigurationError(sink: name, reason: "timeout must be from 0.1 to 300 seconds")
            }
            poster.timeoutSeconds = seconds
            poster.connectTimeoutSeconds = min(poster.connectTimeoutSeconds, seconds)
        }
        switch try required("type") {
        case "webhook":
            let signing = settings["secret"] == nil ? nil : try secret("secret")
            return WebhookSink(name: name, url: try httpURL(try required("url")), secret: signing, poster: poster)
        case "slack":
            return SlackSink(name: name, url: try secret("url"), poster: poster)
        case "teams":
            return TeamsSink(name: name, url: try secret("url"), poster: poster)
        case "pagerduty":
            return PagerDutySink(name: name, routingKey: try secret("routing_key"),
                                 url: try httpURL(settings["url"] ?? PagerDutySink.eventsURL), poster: poster)
        case "splunk":
            return SplunkSink(name: name, url: try httpURL(try required("url")), token: try secret("token"),
                              sourcetype: settings["sourcetype"] ?? "ipsight:alert", index: settings["index"], poster: poster)
        case "ecs":
            let path = try required("path")
            return ECSSink(name: name, destination: path == "-" ? .standardOutput : .file(path))
        case let other:
            throw SinkConfigurationError(sink: name, reason: "unknown type \"\(other)\" (webhook, slack, teams, pagerduty, splunk, ecs)")
        }
    }
}

public struct SinkConfigurationError: Error, CustomStringConvertible {
    public var sink: String
    public var reason: String
    public var description: String { "alert sink \(sink): \(reason)" }
}

extension AlertRouter {
    /// A router from config tables: `sinks` maps each sink's name to its settings
    /// (see `SinkConfiguration`). Every sink is built, and every secret resolved, before
    /// the spool opens, so a bad config fails at start-up.
    public convenience init(spoolPath: String, sinks settings: [String: [String: String]], options: Options = Options(),
                            logger: Logger = Logger(label: "ipsight.alerts"),
                            metrics: any MetricsFactory = MetricsSystem.factory) throws {
        var sinks: [any AlertSink] = []
        for name in settings.keys.sorted() {
            sinks.append(try SinkConfiguration.makeSink(name: name, settings: settings[name]!))
        }
        try self.init(spoolPath: spoolPath, sinks: sinks, options: options, logger: logger, metrics: metrics)
    }
}
