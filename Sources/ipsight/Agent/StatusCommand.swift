import AgentClient
import IPSightCore
import Agent
import AgentAPI
import ArgumentParser
import IPInsightsFormats

/// `ipsight status`: what the running agent has done since it started.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the running agent's counters, model and alert delivery.",
        discussion: """
        Asks the agent's API (GET /v1/status). Exit status 0 when it answered, 1 when
        it is not running or did not answer. --json prints the answer as it came.

        Examples:
          ipsight status
          ipsight status --json --url 127.0.0.1:8081 --token-file /etc/ipsight/token
        """
    )

    @OptionGroup var agent: AgentClientOptions
    @Flag(help: "Print the JSON the agent answered.") var json = false

    func run() throws {
        let value = try AgentRequest.json(agent, "GET", "/v1/status")
        if json {
            print(JSONWriter.string(value))
            return
        }
        func number(_ path: String...) -> String {
            var v: JSONValue? = value
            for key in path { v = v?[key] }
            guard let n = v?.numberValue else { return "-" }
            return n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : Format.fixed(n, 4)
        }
        print("uptime: \(Format.elapsed(value["uptime_seconds"]?.numberValue ?? 0))")
        print("login events: \(number("login_events")), skipped input: \(number("skipped_input")), alerts: \(number("alerts")), mean lag from log to decision: \(number("mean_decision_lag_seconds")) s")
        let decisions = value["decisions"]?.objectValue ?? []
        print("decisions: " + (decisions.isEmpty ? "none yet" : decisions.map { "\($0.0) \(number("decisions", $0.0))" }.joined(separator: ", ")))
        print("history: \(number("history", "logins")) logins of \(number("history", "entities")) entities")
        if value["model"] == .null {
            print("model: none yet (the first is trained once enough logins are stored)")
        } else {
            let calibrated = value["model"]?["calibrated"] == .bool(true)
            let routed = value["model"]?["routed_networks"]?["path"]?.stringValue
                .map { ", with \(number("model", "routed_networks", "networks")) routed networks from \($0)" } ?? ""
            print("model: \(value["model"]?["path"]?.stringValue ?? "?"), written \(Format.elapsed(value["model"]?["age_seconds"]?.numberValue ?? 0)) ago, risk \(calibrated ? "calibrated" : "not calibrated yet")\(routed)")
        }
        print("retrains: \(number("retrains", "installed")) installed, \(number("retrains", "kept_out")) kept out, \(number("retrains", "failed")) failed")
        if value["alert_delivery"] != .null {
            print("alert delivery: \(number("alert_delivery", "delivered")) delivered, \(number("alert_delivery", "queued")) queued, \(number("alert_delivery", "retried")) retries, \(number("alert_delivery", "dropped")) dropped, \(number("alert_delivery", "overflowed")) overflowed"
                + (value["fleet"] != nil && value["fleet"] != .null
                   ? ", \(number("alert_delivery", "claimed_elsewhere")) delivered by other agents" : ""))
        }
        if let fleet = value["fleet"], fleet != .null {
            let state = fleet["state"]?.stringValue ?? "?"
            let since = fleet["since"]?.numberValue.map { " for \(Format.elapsed(max(0, Clock.wall - $0)))" } ?? ""
            let synced = fleet["seconds_since_sync"]?.numberValue.map { "last sync \(Format.elapsed($0)) ago" } ?? "no sync yet"
            print("fleet: \(fleet["host_name"]?.stringValue ?? "?") \(state)\(since), \(synced); to upload \(number("fleet", "upload_backlog")), uploaded \(number("fleet", "uploaded")), received from other hosts \(number("fleet", "received"))")
            if let error = fleet["last_error"]?.stringValue { print("fleet error: \(error)") }
        }
    }
}

/// `ipsight retrain`: the running agent retrains now rather than at its next interval.
struct RetrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retrain",
        abstract: "Ask the running agent to retrain its model now, in the background.",
        discussion: """
        The agent warm-starts from its model on the retention window, validates on the
        most recent logins, and installs the new model only if it is not worse; watch
        `ipsight status` or the journal for the result.
        """
    )

    @OptionGroup var agent: AgentClientOptions

    func run() throws {
        let value = try AgentRequest.json(agent, "POST", "/v1/retrain")
        print(value["status"]?.stringValue ?? JSONWriter.string(value))
    }
}

enum AgentRequest {
    /// One request to the agent; its JSON answer, or a failure that says why.
    static func json(_ options: AgentClientOptions, _ method: String, _ path: String) throws -> JSONValue {
        let reply: AgentClient.Reply
        do {
            reply = try options.client().request(method, path)
        } catch let error as AgentClientError {
            throw IngestCommandFailure("\(error) (is `ipsight run` running?)")
        }
        guard (200..<300).contains(reply.status), let value = try? JSONValue.parse(reply.body) else {
            throw IngestCommandFailure("the agent answered \(reply.status): \(String(decoding: reply.body.prefix(300), as: UTF8.self))")
        }
        return value
    }
}
