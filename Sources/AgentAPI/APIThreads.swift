import Foundation

/// A task executor with threads of its own, for the API's listeners and request
/// handlers. Swift's shared concurrency pool has one thread per core; anything in
/// the process that blocks those threads (a busy test runner, a slow disk under a
/// synchronous call) would otherwise stop `ipsight check` from being answered.
/// With this executor the API answers as long as its own threads are free.
final class APIThreads: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [UnownedJob] = []
    private var head = 0

    /// Starts `count` threads; they live as long as the process.
    init(count: Int, name: String) {
        for k in 0..<max(1, count) {
            let thread = Thread { [unowned(unsafe) self] in self.work() }
            thread.name = "\(name)-\(k)"
            thread.start()
        }
    }

    /// One executor for every API in the process: its threads are never stopped.
    /// One per core, up to 8: a decision takes microseconds, so more would only wait.
    static let shared = APIThreads(count: min(8, max(2, ProcessInfo.processInfo.activeProcessorCount)), name: "ipsight-api")

    func enqueue(_ job: consuming ExecutorJob) {
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
