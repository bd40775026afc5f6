import ArgumentParser

@main
struct IPSight: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ipsight",
        abstract: "Learns where each account logs in from and flags the logins that do not fit.",
        subcommands: [TrainCommand.self, ScoreCommand.self, EvalCommand.self, EmbedCommand.self, TuneCommand.self, ThresholdCommand.self, BenchCommand.self,
                      ParseCommand.self, RulesCommand.self, RunCommand.self, ConfigCommand.self, FeedbackCommand.self, ServeCommand.self,
                      CheckCommand.self, StatusCommand.self, RetrainCommand.self, FleetCommand.self]
    )
}
