import Agent
import ArgumentParser

struct FeedbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feedback",
        abstract: "Tell the agent about its decisions.",
        subcommands: [FeedbackSafeCommand.self]
    )
}

struct FeedbackSafeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "safe",
        abstract: "Mark a user's alerted logins from an address as their own.",
        discussion: """
        Logins the agent alerted on are kept out of the user's history, so that an
        intruder's return alerts again. When the person confirms a login was theirs
        (a trip, a new office), mark it safe: it joins the history, and the running
        agent learns it on reload.

        Example:
          ipsight feedback safe --config /etc/ipsight/ipsight.conf alice 203.0.113.9
          systemctl reload ipsight
        """
    )

    @Option(help: "The agent's config file (for its state directory).")
    var config: String?

    @Argument(help: "The user name as logged.")
    var user: String

    @Argument(help: "The address of the login.")
    var ip: String

    func run() throws {
        do {
            let settings = try config.map { path throws(ConfigError) in try AgentConfig.load(path: path) }
                ?? AgentConfig.parse(AgentConfig.embeddedDefault, path: "(built-in)")
            let store = try ObservationStore(path: settings.databasePath)
            let changed = try store.markLearned(user: user, ip: ip)
            print(changed == 0 ? "no alerted logins of \(user) from \(ip)"
                  : "\(changed) login\(changed == 1 ? "" : "s") of \(user) from \(ip) marked safe; reload the agent to learn them")
        } catch {
            throw IngestCommandFailure("\(error)")
        }
    }
}
