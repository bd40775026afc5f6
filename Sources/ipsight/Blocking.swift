import Foundation
import Synchronization

/// Runs async work to its end from a synchronous command on the main thread, which
/// is not one of the concurrency pool's threads: blocking it starves nothing.
func runBlocking(_ work: @escaping @Sendable () async throws -> Void) throws {
    let failure = Mutex<(any Error)?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        do { try await work() } catch { failure.withLock { $0 = error } }
        done.signal()
    }
    done.wait()
    if let error = failure.withLock({ $0 }) { throw error }
}
