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


