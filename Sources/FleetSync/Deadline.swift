import Fleet
import IPSightCore
import Synchronization

/// Runs `operation` but gives up after `seconds`: postgres-nio's pool waits for a
/// connection for as long as the database is away (it retries on its own), so an
/// unbounded call would hide an outage. On time-out the operation is cancelled and
/// left to end on its own; callers only make calls that are safe to repeat.
func withDeadline<T: Sendable>(_ seconds: Double, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let outcome = Outcome<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            outcome.set(continuation)
            let timer = Task(executorPreference: FleetSyncService.threads) {
                try? await Task.sleep(for: .seconds(seconds))
                if !Task.isCancelled {
                    outcome.finish(.failure(FleetError("no answer from the fleet database within \(formatSeconds(seconds))")))
                }
            }
            let work = Task(executorPreference: FleetSyncService.threads) {
                do { outcome.finish(.success(try await operation())) } catch { outcome.finish(.failure(error)) }
                timer.cancel()
            }
            outcome.onFinish { work.cancel(); timer.cancel() }
        }
    } onCancel: {
        outcome.finish(.failure(CancellationError()))
    }
}

func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(seconds) s"
}

/// The first of the operation, the timer and a cancellation resumes the caller; the others do nothing.
private final class Outcome<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var early: Result<T, any Error>?
        var cleanup: (@Sendable () -> Void)?
        var done = false
    }
    private let state = Mutex(State())

    func set(_ continuation: CheckedContinuation<T, any Error>) {
        let early = state.withLock { s -> Result<T, any Error>? in
            if let early = s.early { s.early = nil; return early }
            s.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    func onFinish(_ cleanup: @escaping @Sendable () -> Void) {
        let now = state.withLock { s -> Bool in
            if s.done { return true }
            s.cleanup = cleanup
            return false
        }
        if now { cleanup() }
    }

    func finish(_ result: Result<T, any Error>) {
        let (continuation, cleanup) = state.withLock { s -> (CheckedContinuation<T, any Error>?, (@Sendable () -> Void)?) in
            if s.done { return (nil, nil) }
            s.done = true
            defer { s.continuation = nil; s.cleanup = nil }
            if s.continuation == nil { s.early = result }
            return (s.continuation, s.cleanup)
        }
        continuation?.resume(with: result)
        cleanup?()
    }
}
