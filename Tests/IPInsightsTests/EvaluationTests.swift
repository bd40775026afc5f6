import IPSightCore
import Testing
@testable import IPInsights

@Suite struct EvaluationTests {
    /// AUC by its definition: the share of (positive, negative) pairs ranked right, ties half.
    func pairwiseAUC(_ scores: [Float], _ labels: [Bool]) -> Double {
        var wins = 0.0, pairs = 0.0
        for i in scores.indices where labels[i] {
            for j in scores.indices where !labels[j] {
                pairs += 1
                if scores[i] > scores[j] { wins += 1 } else if scores[i] == scores[j] { wins += 0.5 }
            }
        }
        return wins / pairs
    }

    @Test func aucMatchesThePairwiseDefinition() {
        var rng = SeededRandom(seed: 5)
        for _ in 0..<20 {
            let n = 50 + rng.below(100)
            // Few distinct values, so that ties are common.
            let scores = (0..<n).map { _ in Float(rng.below(12)) }
            let labels = (0..<n).map { i in rng.unit() < (0.2 + 0.05 * scores[i] / 2) }
            guard labels.contains(true), labels.contains(false) else { continue }
            #expect(abs(Evaluation.auc(scores: scores, labels: labels) - pairwiseAUC(scores, labels)) < 1e-12)
        }
    }

    @Test func recallAtFalsePositiveRate() {
        // 1000 normal scores 0..999, attacks above and below the 1% cut (989).
        let normal = (0..<1000).map { Float($0) }
        let attacks: [Float] = [995, 990, 989, 500, 2000]
        let scores = normal + attacks
        let labels = [Bool](repeating: false, count: 1000) + [Bool](repeating: true, count: 5)
        // Cut = 10th highest normal score = 989; attacks strictly above it count.
        #expect(Evaluation.recall(atFalsePositiveRate: 0.01, anomalyScores: scores, labels: labels) == 3.0 / 5.0)
    }
}
