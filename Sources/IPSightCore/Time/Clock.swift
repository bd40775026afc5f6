#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// What the stages read time from: the system's clocks in production, a clock
/// the test moves by hand in unit tests (`ManualClock`), so nothing waits for
/// real seconds to pass.
public protocol TimeSource: Sendable {
    /// Seconds on a monotonic clock: for durations, backoff and windows.
    var now: Double { get }
    /// Seconds since the Unix epoch: for log times and alert times.
    var wall: Double { get }
}

/// The system's monotonic and real-time clocks.
public struct SystemClock: TimeSource {
    public init() {}
    public var now: Double { Clock.now }
    public var wall: Double { Clock.wall }
}

/// A clock a test sets and advances; both readings move together.
public final class ManualClock: TimeSource {
    private let reading: Mutex<(now: Double, wall: Double)>

    public init(now: Double = 1_000, wall: Double = 1_700_000_000) {
        reading = Mutex((now, wall))
    }

    public var now: Double { reading.withLock { $0.now } }
    public var wall: Double { reading.withLock { $0.wall } }

    public func advance(by seconds: Double) {
        reading.withLock { $0 = ($0.now + seconds, $0.wall + seconds) }
    }
}

/// The system clocks without an instance, for code that is not injected.
public enum Clock {
    /// Seconds on a monotonic clock.
    public static var now: Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Seconds since the Unix epoch (log times are wall-clock times).
    public static var wall: Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// User plus system CPU time of the process so far.
    public static var cpuSeconds: Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        return user + system
    }

    /// Sleeps, resuming after signals.
    public static func sleep(_ seconds: Double) {
        guard seconds > 0 else { return }
        var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
        var rest = timespec()
        while nanosleep(&ts, &rest) != 0 && errno == EINTR { ts = rest }
    }

    /// RFC 3339 UTC with milliseconds, as ECS, PagerDuty and Standard Webhooks expect.
    public static func rfc3339Milliseconds(_ seconds: Double) -> String {
        let clamped = seconds.isFinite ? min(max(seconds, 0), 253_402_300_799) : 0
        let whole = clamped.rounded(.down)
        var t = time_t(whole)
        var parts = tm()
        gmtime_r(&t, &parts)
        let millis = min(999, Int(((clamped - whole) * 1000).rounded()))
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        let ms = String(millis)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + String(repeating: "0", count: 3 - ms.count) + ms + "Z"
    }
}
