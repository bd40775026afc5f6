import Glibc
import Synchronization

/// What the process does with signals before the service group handles them.
public enum ProcessSignals {
    /// A parent may have left SIGTERM, SIGINT or SIGHUP blocked (a blocked mask is
    /// inherited across exec): then no handler would ever run and SIGTERM would
    /// wait for SIGKILL. A closed webhook connection must not kill the process.
    /// Until the service group takes SIGTERM and SIGINT over, they are remembered
    /// here (the agent may spend seconds opening its state and model before that),
    /// and the pipeline stops as soon as it starts.
    public static func prepare() {
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&set, s) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
        signal(SIGTERM) { _ in ProcessSignals.terminating.store(true, ordering: .relaxed) }
        signal(SIGINT) { _ in ProcessSignals.terminating.store(true, ordering: .relaxed) }
        // A reload asked for before the start is the start's own config.
        signal(SIGHUP, SIG_IGN)
    }

    /// SIGTERM or SIGINT arrived before the service group was listening.
    static let terminating = Atomic<Bool>(false)
}
