import Detection
import IPSightCore
import ArgumentParser
import IPInsights
import IPInsightsFormats

/// `--history` and `--calibration`: what the calibrated risk is built from.
struct RiskOptions: ParsableArguments {
    @Option(help: "The entities' login history (entity,ip rows, e.g. the training set), for the calibrated risk.")
    var history: String?
    @Option(help: "Normal logins that came after the history (e.g. the next day), to calibrate the risk; required with --history.")
    var calibration: String?
    @Option(help: ArgumentHelp("Optional routed-network table (first<TAB>last<TAB>asn rows, pyasn style, gzip allowed): distance to the entity's networks is then counted in routed networks.", valueName: "file"))
    var networks: String?

    func validate() throws {
        if calibration != nil && history == nil { throw ValidationError("--calibration needs --history") }
        // A tenth of a shuffled history is not what a detector meets: those logins come
        // from networks the rest of the history already holds, so trips look rarer
        // than they are and the weights are fitted to the wrong logins.
        if history != nil && calibration == nil {
            throw ValidationError("--history needs --calibration: normal logins that came after the history (simulate.py's validation.csv, or the most recent day of your logs); a random slice of the history would calibrate on logins unlike new ones")
        }
        if networks != nil && history == nil { throw ValidationError("--networks needs --history") }
    }

    /// Reads the history, fits the risk weights, and reports them; nil without --history.
    func assessor(model: Model, threads: Int) throws -> RiskAssessor? {
        guard let history else { return nil }
        let (historyData, historyReport) = try PairFile.read(path: history)
        Report.readSummary(historyReport, pairs: historyData.pairs.count)
        let known = historyData.pairs
        var heldOut = TrainingPairs()
        if let calibration {
            let (calibrationData, calibrationReport) = try PairFile.read(path: calibration)
            Report.readSummary(calibrationReport, pairs: calibrationData.pairs.count)
            heldOut = calibrationData.pairs
        }
        var table: RoutedNetworks? = nil
        if let networks {
            table = try RoutedNetworksFile.read(path: networks)
            Console.error("\(networks): \(table!.count) routed networks")
        }
        let assessor = RiskAssessor(model: model, history: known, heldOut: heldOut, networks: table, threads: threads)
        Console.error("risk weights: " + zip(RiskModel.featureNames + ["intercept"], assessor.riskModel.weights)
            .map { "\($0)=\(Console.fixed($1, 3))" }.joined(separator: ", ")
            + "; travel-rate prior Beta(\(Console.fixed(assessor.history.travelPrior.alpha, 3)), \(Console.fixed(assessor.history.travelPrior.beta, 2)))")
        return assessor
    }
}
