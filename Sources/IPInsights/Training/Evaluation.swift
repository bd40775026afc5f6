import IPSightCore
import Dispatch

/// Scores many pairs at once: addresses are encoded in blocks so the dense layers
/// run as matrix products, and blocks are spread over threads.
public struct BatchScorer: Sendable {
    public let model: Model
    public let threads: Int
    static let block = 2048

    public init(model: Model, threads: Int = 2) {
        self.model = model
        self.threads = max(1, threads)
    }

    /// scores[i] = entity_embedding(entityRows[i]) · ip_embedding(ips[i]); with
    /// `ipEmbeddings` (n × d) the encoder outputs are kept too.
    public func score(entityRows: UnsafeBufferPointer<Int32>, ips: UnsafeBufferPointer<IPAddress>,
                      into scores: UnsafeMutableBufferPointer<Float>,
                      ipEmbeddings: UnsafeMutablePointer<Float>? = nil) {
        precondition(entityRows.count == ips.count && scores.count >= ips.count)
        let n = ips.count
        let d = model.dimension
        let blocks = (n + BatchScorer.block - 1) / BatchScorer.block
        // Scratch for one block, no larger than the request: a request of one pair
        // must not pay for zeroing megabytes.
        let rowsPerBlock = min(BatchScorer.block, max(n, 1))
        // Blocks are spread over the threads; fewer blocks than threads share each
        // block's products instead.
        let parts = max(1, min(threads, blocks))
        let productThreads = parts < threads ? threads : 1
        let work = { (lo: Int, hi: Int) in
            let out = FloatBuffer(count: rowsPerBlock * d)
            let scratch = FloatBuffer(count: rowsPerBlock * d)
            for b in lo..<hi {
                let start = b * BatchScorer.block, end = min(start + BatchScorer.block, n)
                let rows = UnsafeBufferPointer(rebasing: ips[start..<end])
                let target = ipEmbeddings.map { $0 + start * d } ?? out.pointer
                model.encode(rows, into: target, scratch: scratch.pointer, threads: productThreads)
                for i in start..<end {
                    scores[i] = Kernels.dot(model.entityVector(row: Int(entityRows[i])), target + (i - start) * d, d)
                }
            }
        }
        Parallel.chunks(blocks, parts: parts) { _, lo, hi in work(lo, hi) }
    }

    public func score(entityRows: [Int32], ips: [IPAddress]) -> [Float] {
        var scores = [Float](repeating: 0, count: ips.count)
        entityRows.withUnsafeBufferPointer { e in
            ips.withUnsafeBufferPointer { i in
                scores.withUnsafeMutableBufferPointer { s in score(entityRows: e, ips: i, into: s) }
            }
        }
        return scores
    }
}

/// Ranking metrics for anomaly detection.
public enum Evaluation {
    /// Area under the ROC curve of `scores` separating label-true from label-false,
    /// higher score meaning more likely true; ties count one half.
    public static func auc(scores: [Float], labels: [Bool]) -> Double {
        precondition(scores.count == labels.count)
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSumPositive = 0.0
        var positives = 0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count, scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let rank = Double(i + j) / 2 + 1
            for k in i...j where labels[order[k]] { rankSumPositive += rank; positives += 1 }
            i = j + 1
        }
        let negatives = scores.count - positives
        guard positives > 0, negatives > 0 else { return .nan }
        return (rankSumPositive - Double(positives) * Double(positives + 1) / 2) / (Double(positives) * Double(negatives))
    }

    /// The share of anomalies (label true) whose anomaly score is above the
    /// threshold that lets `fpr` of the normal rows through, as `evaluate.py` computes it.
    public static func recall(atFalsePositiveRate fpr: Double, anomalyScores: [Float], labels: [Bool]) -> Double {
        let normal = zip(anomalyScores, labels).filter { !$0.1 }.map(\.0).sorted(by: >)
        let attacks = zip(anomalyScores, labels).filter { $0.1 }.map(\.0)
        guard !normal.isEmpty, !attacks.isEmpty else { return .nan }
        let cut = normal[min(normal.count - 1, Int(fpr * Double(normal.count)))]
        return Double(attacks.filter { $0 > cut }.count) / Double(attacks.count)
    }

    /// `validation:discriminator_auc`: the AUC of the model separating the validation
    /// pairs from as many negative samples, each the same entity with a random
    /// address of the same family (R = 1, S = 0). The negatives come from a fixed
    /// seed so that models compared on one validation set see the same negatives.
    /// The activity prior is left out: the spec's metric is for the spec's score,
    /// and a pair and its negative share the entity, so the prior only adds noise.
    public static func discriminatorAUC(model: Model, pairs: TrainingPairs, threads: Int = 2, seed: UInt64 = 0x5EED) -> Double {
        let n = pairs.count
        guard n > 0 else { return .nan }
        var rng = SeededRandom(seed: seed)
        var rows = [Int32](repeating: 0, count: 2 * n)
        var ips = [IPAddress](repeating: IPAddress(high: 0, low: 0), count: 2 * n)
        let entities = UInt64(model.hyperparameters.numEntityVectors)
        for i in 0..<n {
            let row = Int32(pairs.entityHashes[i] % entities)
            rows[i] = row
            ips[i] = pairs.ips[i]
            rows[n + i] = row
            ips[n + i] = pairs.ips[i].isIPv4
                ? IPAddress(ipv4: UInt32(truncatingIfNeeded: rng.next()))
                : IPAddress(high: 0x2000_0000_0000_0000 | (rng.next() >> 3), low: rng.next())
        }
        var scores = BatchScorer(model: model, threads: threads).score(entityRows: rows, ips: ips)
        if model.hasActivityPrior {
            for i in scores.indices { scores[i] -= model.activityPrior(row: Int(rows[i])) }
        }
        var labels = [Bool](repeating: true, count: 2 * n)
        for i in n..<(2 * n) { labels[i] = false }
        return auc(scores: scores, labels: labels)
    }
}
