import ServiceLifecycle
import Synchronization

/// Returns when the service group shuts down gracefully or the task is cancelled.
///
/// ServiceLifecycle's own `gracefulShutdown()` is woken by an unstructured task,
/// which runs on Swift's shared pool whatever executor the service prefers: anything
/// in the process that holds those threads (a busy test runner, a blocking call)
/// would hold up SIGTERM with it. This latch is opened directly by the handler.
public func waitForShutdown() async {
    let latch = ShutdownLatch()
    await withTaskCancellationHandler {
        await withGracefulShutdownHandler {
            await withCheckedContinuation { latch.wait($0) }
        } onGracefulShutdown: {
            latch.open()
        }
    } onCancel: {
        latch.open()
    }
}

/// Opened once; a waiter that comes after it opened goes straight through.
private final class ShutdownLatch: Sendable {
    private let state = Mutex<(isOpen: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func wait(_ continuation: CheckedContinuation<Void, Never>) {
        let passes = state.withLock { state in
            if state.isOpen { return true }
            state.waiter = continuation
            return false
        }
        if passes { continuation.resume() }
    }

    func open() {
        let waiter = state.withLock { state in
            state.isOpen = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}
