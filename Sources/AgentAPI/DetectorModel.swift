import Detection
import Agent
import Foundation
import IPInsights
import Server

/// The agent's current model as the hosting contract's routes see it: whatever
/// the retrainer last installed in the detector.
struct DetectorModel: ServedModel {
    let detector: Detector
    let path: String

    var serving: LoadedModel? {
        guard let (model, installedAt) = detector.installedModel else { return nil }
        var info = stat()
        let written = stat(path, &info) == 0
            ? Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9 : installedAt
        return LoadedModel(model: model, fileModified: written, loadedAt: installedAt, loadSeconds: 0)
    }

    var model: Model? { detector.installedModel?.model }
}
