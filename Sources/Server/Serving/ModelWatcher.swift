import Dispatch
import Foundation

/// Reloads the model in the background when its file changes (polled) or on SIGHUP.
/// Both run on one serial queue, so two loads never overlap and requests never wait.
public final class ModelWatcher: @unchecked Sendable {
    let store: ModelStore
    let queue = DispatchQueue(label: "ipsight.model-reload")
    private var sources: [any DispatchSourceProtocol] = []

    public init(store: ModelStore) {
        self.store = store
    }

    /// Starts polling every `pollInterval` seconds and, with `sighup`, reloading on SIGHUP.
    public func start(pollInterval: Double, sighup: Bool = true) {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + pollInterval, repeating: pollInterval)
        timer.setEventHandler { [store] in store.reloadIfChanged() }
        timer.resume()
        sources.append(timer)
        if sighup {
            // The default action of SIGHUP ends the process; the source sees it once ignored.
            signal(SIGHUP, SIG_IGN)
            let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: queue)
            hangup.setEventHandler { [store] in store.reload(reason: "SIGHUP") }
            hangup.resume()
            sources.append(hangup)
        }
    }

    public func stop() {
        for source in sources { source.cancel() }
        sources.removeAll()
    }
}
