import CSystemd

/// sd_notify messages to the service manager; without `$NOTIFY_SOCKET` (not
/// under systemd, or in tests) each call does nothing.
public enum SystemdNotifier {
    public static func ready() { notify("READY=1\nSTATUS=scoring logins") }
    public static func watchdog() { notify("WATCHDOG=1") }
    public static func stopping() { notify("STOPPING=1") }
    public static func reloading() { notify("RELOADING=1") }
    public static func status(_ text: String) { notify("STATUS=\(text)") }

    /// Half the watchdog interval in seconds, or nil when no watchdog is set.
    public static func watchdogInterval() -> Double? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return Double(usec) / 2e6
    }

    private static func notify(_ state: String) { _ = sd_notify(0, state) }
}
