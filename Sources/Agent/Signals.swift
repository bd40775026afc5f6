#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// SIGTERM/SIGINT and SIGHUP noted by async-signal-safe handlers, read by the
/// pipeline between batches.
public enum AgentSignals {
    static let terminate = Atomic<Bool>(false)
    static let reload = Atomic<Bool>(false)

    public static func install() {
        // A parent may have left these blocked (a blocked mask is inherited across
        // exec): then no handler would ever run and SIGTERM would wait for SIGKILL.
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&set, s) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        signal(SIGTERM) { _ in AgentSignals.terminate.store(true, ordering: .relaxed) }
        signal(SIGINT) { _ in AgentSignals.terminate.store(true, ordering: .relaxed) }
        signal(SIGHUP) { _ in AgentSignals.reload.store(true, ordering: .relaxed) }
        signal(SIGPIPE, SIG_IGN)
    }

    /// Asks a running agent to stop, as SIGTERM would (tests, embedding).
    public static func requestStop() { terminate.store(true, ordering: .relaxed) }

    static func takeTerminate() -> Bool { terminate.load(ordering: .relaxed) }
    static func takeReload() -> Bool { reload.exchange(false, ordering: .relaxed) }
    static func reset() {
        terminate.store(false, ordering: .relaxed)
        reload.store(false, ordering: .relaxed)
    }
}
