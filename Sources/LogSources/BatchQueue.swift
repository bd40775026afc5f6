#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A bounded queue of batches from a producer thread to a consumer
/// that either blocks (a command-line loop) or awaits (a Swift task).
///
/// The producer blocks while the queue is full, so a slow consumer slows the
/// reader down instead of growing memory or dropping records.
final class BatchQueue<Batch: Sendable>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let notFull = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let notEmpty = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let capacity: Int
    private var items: [Batch] = []
    private var finished = false
    private var failure: SourceError?
    private var cancelled = false
    private var waiter: CheckedContinuation<Batch?, any Error>?

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(notFull, nil)
        pthread_cond_init(notEmpty, nil)
    }

    deinit {
        pthread_cond_destroy(notFull)
        pthread_cond_destroy(notEmpty)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        notFull.deallocate()
        notEmpty.deallocate()
    }

    var isCancelled: Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return cancelled
    }

    /// Blocks while full; false once the consumer cancelled.
    func push(_ batch: Batch) -> Bool {
        pthread_mutex_lock(mutex)
        while items.count >= capacity && !cancelled { pthread_cond_wait(notFull, mutex) }
        if cancelled {
            pthread_mutex_unlock(mutex)
            return false
        }
        if let continuation = waiter {
            waiter = nil
            pthread_mutex_unlock(mutex)
            continuation.resume(returning: batch)
            return true
        }
        items.append(batch)
        pthread_cond_signal(notEmpty)
        pthread_mutex_unlock(mutex)
        return true
    }

    /// No more batches will come; the consumer sees `error` after the last one.
    func finish(error: SourceError? = nil) {
        pthread_mutex_lock(mutex)
        if cancelled {
            pthread_mutex_unlock(mutex)
            return
        }
        finished = true
        failure = error
        let continuation = waiter
        waiter = nil
        pthread_cond_broadcast(notEmpty)
        pthread_mutex_unlock(mutex)
        if let continuation {
            if let error { continuation.resume(throwing: error) } else { continuation.resume(returning: nil) }
        }
    }

    /// Stop: release a blocked producer and a waiting consumer (which then sees
    /// the end), and drop what is queued.
    func cancel() {
        pthread_mutex_lock(mutex)
        cancelled = true
        finished = true
        items.removeAll()
        let continuation = waiter
        waiter = nil
        pthread_cond_broadcast(notFull)
        pthread_cond_broadcast(notEmpty)
        pthread_mutex_unlock(mutex)
        continuation?.resume(returning: nil)
    }

    /// The next batch, blocking; nil at the end.
    func pop() throws(SourceError) -> Batch? {
        pthread_mutex_lock(mutex)
        while items.isEmpty && !finished { pthread_cond_wait(notEmpty, mutex) }
        defer { pthread_mutex_unlock(mutex) }
        if !items.isEmpty {
            pthread_cond_signal(notFull)
            return items.removeFirst()
        }
        if let failure { throw failure }
        return nil
    }

    /// The next batch, suspending the task rather than blocking its thread.
    func next() async throws -> Batch? {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Batch?, any Error>) in
            pthread_mutex_lock(mutex)
            if !items.isEmpty {
                let batch = items.removeFirst()
                pthread_cond_signal(notFull)
                pthread_mutex_unlock(mutex)
                continuation.resume(returning: batch)
            } else if finished {
                let failure = self.failure
                pthread_mutex_unlock(mutex)
                if let failure { continuation.resume(throwing: failure) } else { continuation.resume(returning: nil) }
            } else {
                waiter = continuation
                pthread_mutex_unlock(mutex)
            }
        }
    }
}
