#if canImport(Glibc)
import Glibc
#endif
import AlertSinks
import IPInsights
import Synchronization
import TestSupport
import IPSightCore
@testable import Agent

enum Paths {
    static let packageRoot = PackagePaths.root
    static let rules = PackagePaths.root + "/rules"
}

/// An alert router that keeps what it is given, for assertions.
final class CollectingRouter: AlertRouting, @unchecked Sendable {
    private let alerts = Mutex<[Alert]>([])
    var received: [Alert] { alerts.withLock { $0 } }
    func submit(_ alert: Alert) throws { alerts.withLock { $0.append(alert) } }
    func drain(seconds: Double) {}
}

