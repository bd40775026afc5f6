#if canImport(Glibc)
import Glibc
#endif
import AlertSinks
import IPInsights
import Foundation
import Synchronization
import TestSupport
import IPSightCore
@testable import Agent

enum Paths {
    static let packageRoot = PackagePaths.root
    static let rules = PackagePaths.root + "/rules"
}



/// An agent run on its own lifecycle threads, as `ipsight run` runs it, started and
/// awaited without Swift's shared pool: the test runner's synchronous suites may
/// hold every one of its threads for seconds.
final class RunningAgent: Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let failure = Mutex<(any Error)?>(nil)

    init(_ agent: AgentRuntime, retrain: Bool = false) {
        Task(executorPreference: AgentRuntime.lifecycleThreads) {
            do { try await agent.run(retrain: retrain) } catch { self.failure.withLock { $0 = error } }
            self.done.signal()
        }
    }

    /// Waits up to `seconds` for the run to end: false if it did not; throws its error.
    @discardableResult
    func wait(seconds: Double = 120) throws -> Bool {
        guard done.wait(timeout: .now() + seconds) == .success else { return false }
        if let error = failure.withLock({ $0 }) { throw error }
        return true
    }
}

/// Runs the agent until its sources end (they are not followed) and throws its error.
func runToEnd(_ agent: AgentRuntime, retrain: Bool = false) throws {
    let running = RunningAgent(agent, retrain: retrain)
    guard try running.wait() else { throw AgentFailure(message: "the agent did not finish within 120 s") }
}
