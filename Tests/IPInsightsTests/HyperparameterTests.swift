import Testing
@testable import IPInsights

@Suite struct HyperparameterTests {
    let required = ["num_entity_vectors": "100", "vector_dim": "8"]

    func parse(_ extra: [String: String]) throws(HyperparameterError) -> Hyperparameters {
        try Hyperparameters(strings: required.merging(extra) { $1 })
    }

    @Test func defaultsFollowTheSpecification() throws {
        let hp = try parse([:])
        #expect(hp.batchMetricsPublishInterval == 1000)
        #expect(hp.epochs == 10)
        #expect(hp.learningRate == 0.001)
        #expect(hp.miniBatchSize == 10_000)
        #expect(hp.numIPEncoderLayers == 1)
        #expect(hp.randomNegativeSamplingRate == 1)
        #expect(hp.shuffledNegativeSamplingRate == 1)
        #expect(hp.weightDecay == 0.00001)
    }

    // Each bound: the limit itself is accepted, one step past it is refused with a
    // message naming the parameter and its range. (Sums of R and S are kept valid.)
    @Test(arguments: [
        ("num_entity_vectors", "1", "0", "250000000", "250000001"),
        ("vector_dim", "4", "3", "4096", "4097"),
        ("batch_metrics_publish_interval", "1", "0", nil, nil),
        ("epochs", "1", "0", nil, nil),
        ("learning_rate", "1e-6", "9e-7", "10.0", "10.01"),
        ("mini_batch_size", "1", "0", "500000", "500001"),
        ("num_ip_encoder_layers", "0", "-1", "100", "101"),
        ("random_negative_sampling_rate", "0", "-1", "499", "501"),
        ("shuffled_negative_sampling_rate", "0", "-1", "499", "501"),
        ("weight_decay", "0.0", "-0.1", "10.0", "10.5"),
    ] as [(String, String, String, String?, String?)])
    func bounds(_ name: String, _ lowest: String, _ tooLow: String, _ highest: String?, _ tooHigh: String?) throws {
        _ = try parse([name: lowest])
        assertRefused(name, tooLow)
        if let highest { _ = try parse([name: highest]) }
        if let tooHigh { assertRefused(name, tooHigh) }
    }

    func assertRefused(_ name: String, _ value: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try parse([name: value])
            Issue.record("\(name)=\(value) was accepted", sourceLocation: sourceLocation)
        } catch {
            let message = error.description
            #expect(message.contains(name), sourceLocation: sourceLocation)
            #expect(message.contains("valid:"), sourceLocation: sourceLocation)
        }
    }

    @Test func samplingRatesMustSumToOneThroughFiveHundred() throws {
        #expect(throws: HyperparameterError.self) {
            try parse(["random_negative_sampling_rate": "0", "shuffled_negative_sampling_rate": "0"])
        }
        #expect(throws: HyperparameterError.self) {
            try parse(["random_negative_sampling_rate": "250", "shuffled_negative_sampling_rate": "251"])
        }
        let edge = try parse(["random_negative_sampling_rate": "250", "shuffled_negative_sampling_rate": "250"])
        #expect(edge.randomNegativeSamplingRate + edge.shuffledNegativeSamplingRate == 500)
        _ = try parse(["random_negative_sampling_rate": "0", "shuffled_negative_sampling_rate": "1"])
    }

    @Test func wrongTypesUnknownNamesAndMissingValuesAreRefused() {
        for (name, value) in [("epochs", "2.5"), ("epochs", "ten"), ("learning_rate", "fast"), ("vector_dim", ""),
                              ("learning_rate", "nan"), ("mini_batch_size", "1e3")] {
            assertRefused(name, value)
        }
        do {
            _ = try parse(["epoch": "5"])
            Issue.record("unknown name accepted")
        } catch {
            #expect(error.description.contains("unknown hyperparameter 'epoch'"))
        }
        do {
            _ = try Hyperparameters(strings: ["vector_dim": "8"])
            Issue.record("missing num_entity_vectors accepted")
        } catch {
            #expect(error.description.contains("num_entity_vectors is required"))
        }
    }

    @Test func stringsRoundTrip() throws {
        let hp = try parse(["learning_rate": "0.01", "epochs": "5", "weight_decay": "0.5"])
        #expect(try Hyperparameters(strings: hp.strings) == hp)
        #expect(hp.orderedStrings.map(\.0) == Hyperparameters.specs.map(\.name))
    }
}
