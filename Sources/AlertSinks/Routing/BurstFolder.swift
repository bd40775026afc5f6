/// A sink's rate limit: at most `limit` alerts per user and address per `window`
/// seconds go out one by one; the rest of the burst is folded into one alert carrying
/// their count, sent when the window closes. One attack burst then pages a person a
/// handful of times, not a thousand.
public struct FoldPolicy: Sendable, Equatable {
    public var limit: Int
    public var window: Double

    public init(limit: Int, window: Double) {
        self.limit = limit
        self.window = window
    }

    /// Every alert delivered on its own (for SIEM files that want each event).
    public static let off = FoldPolicy(limit: .max, window: 0)
}

/// The window state behind a `FoldPolicy`, per user and address. In memory only: after
/// a restart a burst may send up to `limit` more alerts, which errs on the side of telling.
struct BurstFolder {
    private struct Window {
        var start: Double
        var admitted: Int
    }

    let policy: FoldPolicy
    private var windows: [String: Window] = [:]
    /// Size at which closed windows are swept out: twice what the last sweep kept, so
    /// a storm of distinct pairs costs a sweep per doubling, not one per alert.
    private var sweepAt = BurstFolder.sweepFloor
    static let sweepFloor = 50_000
    /// Open windows kept at most: past it (after a sweep) the state starts over, so
    /// memory stays bounded; a burst may then send up to `limit` more, erring on the
    /// side of telling.
    static let maximumWindows = 500_000

    init(policy: FoldPolicy) { self.policy = policy }

    mutating func placement(user: String, ip: String, now: Double) -> Spool.Placement {
        guard policy.limit != .max, policy.window > 0 else { return .now }
        if windows.count >= sweepAt {
            windows = windows.filter { now - $0.value.start < policy.window }
            if windows.count > BurstFolder.maximumWindows { windows = [:] }
            sweepAt = max(BurstFolder.sweepFloor, 2 * windows.count)
        }
        let key = "\(user)\u{1F}\(ip)"
        var window = windows[key] ?? Window(start: now, admitted: 0)
        if now - window.start >= policy.window { window = Window(start: now, admitted: 0) }
        defer { windows[key] = window }
        if window.admitted < policy.limit {
            window.admitted += 1
            return .now
        }
        return .fold(until: window.start + policy.window)
    }
}
