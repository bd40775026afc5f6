import IPInsights

/// Training steps the retrainer composes: a first model from stored logins, a
/// warm-started copy of the current one, and the comparison that decides
/// whether a new model replaces the old.
public enum ModelTraining {
    /// Hyperparameters for a first model sized to the entities seen: a table
    /// with room for every entity (hash collisions stay rare), small vectors,
    /// enough epochs for a few hundred logins to shape the embeddings.
    public static func bootstrapHyperparameters(entities: Int, pairs: Int) -> Hyperparameters {
        var hp = Hyperparameters(numEntityVectors: min(max(entities * 4, 64), 2_000_000), vectorDim: 16)
        hp.epochs = pairs < 10_000 ? 30 : 10
        hp.learningRate = 0.01
        hp.miniBatchSize = min(max(pairs / 20, 16), 10_000)
        hp.batchMetricsPublishInterval = 1_000_000
        return hp
    }

    public static func train(_ pairs: TrainingPairs, seed: UInt64, threads: Int = 1) -> Model {
        let entities = Set(pairs.entityHashes).count
        let model = Model(hyperparameters: bootstrapHyperparameters(entities: entities, pairs: pairs.count))
        model.initialise(seed: seed)
        _ = Trainer(model: model, seed: seed, threads: threads).train(pairs)
        return model
    }

    /// The current model trained further on `pairs`, leaving the current one untouched
    /// (it keeps scoring meanwhile).
    public static func warmStart(from current: Model, on pairs: TrainingPairs, seed: UInt64, threads: Int = 1) -> Model {
        let copy = current.copy()
        _ = Trainer(model: copy, seed: seed, threads: threads).train(pairs)
        return copy
    }

    /// Whether `candidate` is not worse than `current` on validation logins
    /// (discriminator AUC, within a small tolerance for noise).
    public static func accept(candidate: Model, current: Model, validation: TrainingPairs, threads: Int = 1)
        -> (accepted: Bool, candidateAUC: Double, currentAUC: Double) {
        let new = Evaluation.discriminatorAUC(model: candidate, pairs: validation, threads: threads)
        let old = Evaluation.discriminatorAUC(model: current, pairs: validation, threads: threads)
        return (new >= old - 0.002, new, old)
    }
}
