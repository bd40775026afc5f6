import Agent
import AgentClient
import ArgumentParser
import IPSightCore

struct FeedbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feedback",
        abstract: "Tell the agent whether a user's logins from an address were theirs.",
        discussion: """
        Logins the agent alerted on are kept out of the user's history, so that an
        intruder's return alerts again. When the person confirms a login was theirs
        (a trip, a new office), mark it safe: it joins the history. When it was not,
        mark it compromised: the user's logins from the address leave the history,
        so the address is unusual for them again.

        The running agent takes the feedback through its API and uses it at once;
        when its API does not answer, the feedback goes to its state directory and
        the agent uses it when it starts or reloads.

        Examples:
          ipsight feedback safe alice 203.0.113.9
          ipsight feedback compromised --config /etc/ipsight/ipsight.conf bob 198.51.100.7
        """,
        subcommands: [Safe.self, Compromised.self]
    )

    struct Safe: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Mark a user's logins from an address as their own.")
        @OptionGroup var login: FeedbackOptions
        func run() throws { try login.send(.legitimate) }
    }

    struct Compromised: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Mark a user's logins from an address as not theirs.")
        @OptionGroup var login: FeedbackOptions
        func run() throws { try login.send(.compromised) }
    }
}

struct FeedbackOptions: ParsableArguments {
    @OptionGroup var agent: AgentClientOptions

    @Option(help: "The service the login was to (the entity is user and service when the agent keys by both).")
    var service = "sshd"

    @Argument(help: "The user name as logged.")
    var user: String

    @Argument(help: "The address of the logins.")
    var ip: String

    func validate() throws {
        guard IPAddress(ip) != nil else { throw ValidationError("'\(ip)' is not an IPv4 or IPv6 address") }
        guard !user.isEmpty else { throw ValidationError("the user must not be empty") }
    }

    /// Through the running agent when its API answers, else into its store.
    func send(_ verdict: FeedbackVerdict) throws {
        let address = IPAddress(ip)!.description
        let request = JSONValue.object([("user", .string(user)), ("ip", .string(address)), ("service", .string(service)),
                                        ("verdict", .string(verdict.rawValue))])
        var body: [UInt8] = []
        JSONWriter.append(request, to: &body)
        do {
            let reply = try agent.client().request("POST", "/v1/feedback", json: body)
            guard reply.status == 200, let answer = try? JSONValue.parse(reply.body) else {
                throw IngestCommandFailure("the agent answered \(reply.status): \(String(decoding: reply.body.prefix(300), as: UTF8.self))")
            }
            let outcome = FeedbackOutcome(changed: Int(answer["logins_changed"]?.numberValue ?? 0),
                                          added: answer["login_added"]?.boolValue ?? false)
            print(Self.describe(outcome, verdict, user: user, ip: address) + "; the running agent uses it now")
        } catch let error as AgentClientError {
            guard case .unreachable = error else { throw IngestCommandFailure(error.description) }
            try store(verdict, address: address)
        }
    }

    private func store(_ verdict: FeedbackVerdict, address: String) throws {
        do {
            let settings = try agent.config.map { path throws(ConfigError) in try AgentConfig.load(path: path) }
                ?? AgentConfig.parse(AgentConfig.embeddedDefault, path: "(built-in)")
            let store = try ObservationStore(path: settings.databasePath)
            let outcome = try store.apply(verdict, user: user, ip: address, service: service, detector: nil,
                                          retention: settings.retention)
            print(Self.describe(outcome, verdict, user: user, ip: address)
                  + " in \(settings.databasePath); a running agent uses it once reloaded (systemctl reload ipsight)")
        } catch {
            throw IngestCommandFailure("\(error)")
        }
    }

    static func describe(_ outcome: FeedbackOutcome, _ verdict: FeedbackVerdict, user: String, ip: String) -> String {
        let word = verdict == .legitimate ? "safe" : "compromised"
        if outcome.added { return "a login of \(user) from \(ip) added as safe" }
        if outcome.changed == 0 {
            return verdict == .legitimate ? "\(user) from \(ip) is already in the history" : "no learnt logins of \(user) from \(ip)"
        }
        return "\(outcome.changed) login\(outcome.changed == 1 ? "" : "s") of \(user) from \(ip) marked \(word)"
    }
}
