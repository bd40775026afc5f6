import Glibc

/// A signal the delivery thread sleeps on with a timeout: `submit` and `drain` wake it.
/// A pending signal is remembered, so a wake-up sent before the wait is not lost.
final class Wakeup: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var signalled = false

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        // Monotonic, so a wall-clock step does not stretch a wait.
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func signal() {
        pthread_mutex_lock(mutex)
        signalled = true
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Returns after `seconds` or on a signal, whichever comes first.
    func wait(seconds: Double) {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let total = Double(deadline.tv_nsec) / 1e9 + max(0, seconds)
        deadline.tv_sec += Int(total.rounded(.down))
        deadline.tv_nsec = Int((total - total.rounded(.down)) * 1e9)
        pthread_mutex_lock(mutex)
        while !signalled {
            if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { break }
        }
        signalled = false
        pthread_mutex_unlock(mutex)
    }
}

/// Rows waiting for a sink's delivery threads: `take` blocks until there is one, and
/// returns nil once the queue is closed (what is still queued is left in the spool).
final class WorkQueue<Element>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var items: [Element] = []
    private var head = 0
    private var closed = false

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func put(_ item: Element) {
        pthread_mutex_lock(mutex)
        if !closed {
            items.append(item)
            pthread_cond_signal(condition)
        }
        pthread_mutex_unlock(mutex)
    }

    func take() -> Element? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !closed && head == items.count { pthread_cond_wait(condition, mutex) }
        guard !closed else { return nil }
        let item = items[head]
        head += 1
        // Compacted when drained, so the array does not grow with every row ever queued.
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        }
        return item
    }

    func close() {
        pthread_mutex_lock(mutex)
        closed = true
        items.removeAll()
        head = 0
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }
}

/// A dedicated OS thread: libcurl's easy API blocks, and blocking a Swift concurrency
/// thread would starve the agent's tasks.
final class DeliveryThread: Sendable {
    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    private let thread: pthread_t

    init(_ run: @escaping @Sendable () -> Void) throws(AlertRouterError) {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(Body(run)).toOpaque()
        let rc = pthread_create(&thread, nil, { context in
            Unmanaged<Body>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<Body>.fromOpaque(context).release()
            throw AlertRouterError(message: "cannot start the delivery thread: \(String(cString: strerror(rc)))")
        }
        self.thread = thread
    }

    func join() { pthread_join(thread, nil) }

    /// For a thread left running at shutdown (a sink that ignored cancellation): its
    /// resources are freed when it ends, and nobody waits for it.
    func detach() { pthread_detach(thread) }
}
