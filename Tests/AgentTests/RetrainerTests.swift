import TestSupport
import Detection
import IPSightCore
import IPInsights
import Testing
@testable import Agent

@Suite struct RetrainerTests {
    @Test func aDueRetrainingWarmStartsValidatesAndSwapsTheModel() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var c = AgentConfig()
        c.stateDirectory = dir.path
        c.retention = 3650 * 86_400
        c.bootstrapMinLogins = 50
        let store = try ObservationStore(path: c.databasePath)
        var recent = Synthetic.observations(300)
        let now = Clock.wall
        for i in recent.indices { recent[i].time = now - Double(300 - i) * 60 }
        try store.commit(recent, positions: [:])

        let original = Synthetic.model()
        try ModelFile.save(original, to: c.resolvedModelPath)
        let detector = Detector(policy: c.policy, model: original)
        let retrainer = Retrainer(config: c, detector: detector, logger: .discarding)
        retrainer.step()
        #expect(detector.model === original, "not due yet: only calibrated")
        #expect(detector.calibration != nil)

        c.retrainInterval = 1e-6
        retrainer.reconfigure(c)
        retrainer.step()
        let current = try #require(detector.model)
        let saved = try ModelFile.load(path: c.resolvedModelPath)
        if current === original {
            #expect(saved.trainedPairs == original.trainedPairs, "a worse model is neither installed nor saved")
        } else {
            #expect(current.trainedPairs > original.trainedPairs, "warm start: trained further")
            #expect(saved.trainedPairs == current.trainedPairs, "the file holds the installed model")
        }
    }
}
