import Foundation

/// A task executor with threads of its own. Swift's shared concurrency pool has one
/// thread per core; anything in the process that blocks those threads (a busy test
/// runner, a slow disk under a synchronous call) stalls every task waiting for one.
/// Tasks that prefer this executor (the agent's API, so `ipsight check` is always
/// answered; the agent's services, so SIGTERM is always handled) run as long as its
/// own threads are free.
public final class DedicatedThreads: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [UnownedJob] = []
    private var head = 0

    /// Starts `count` threads; they live as long as the process.
    public init(count: Int, name: String) {
        for k in 0..<max(1, count) {
            let thread = Thread { [unowned(unsafe) self] in self.work() }
            thread.name = "\(name)-\(k)"
            thread.start()
        }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        queue.append(unowned)
        condition.signal()
        condition.unlock()
    }

    private func work() {
        let executor = asUnownedTaskExecutor()
        while true {
            condition.lock()
            while head == queue.count { condition.wait() }
            let job = queue[head]
            head += 1
            // Reclaim the consumed front once it dominates, so the array stays small.
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 1024 && head * 2 >= queue.count {
                queue.removeFirst(head)
                head = 0
            }
            condition.unlock()
            job.runSynchronously(on: executor)
        }
    }
}
