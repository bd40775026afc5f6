#if canImport(Glibc)
import IPSightCore
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import IPInsights
import IPInsightsFormats

/// The routed-network table `[risk] networks` names, as read. One object per
/// reading, so that a calibration and the history scored against it can be
/// checked to share the same table (`===`) without comparing a million rows, and
/// a reload reads the file again only when it is another file or has changed.
public final class RoutedNetworksTable: Sendable, Equatable {
    public let path: String
    public let networks: RoutedNetworks
    /// Device, inode, size and modification time when read: a table replaced
    /// (renamed over) or rewritten in place differs in one of them.
    let stamp: [Int64]?

    public convenience init(path: String, networks: RoutedNetworks) {
        self.init(path: path, networks: networks, stamp: RoutedNetworksTable.stamp(path))
    }

    init(path: String, networks: RoutedNetworks, stamp: [Int64]?) {
        self.path = path
        self.networks = networks
        self.stamp = stamp
    }

    /// Reads `first<TAB>last<TAB>asn` rows (pyasn's format, gzip allowed).
    public static func read(path: String) throws(InputError) -> RoutedNetworksTable {
        // Stamped before reading: a file rewritten meanwhile is read again next time.
        let stamp = RoutedNetworksTable.stamp(path)
        do {
            return RoutedNetworksTable(path: path, networks: try RoutedNetworksFile.read(path: path), stamp: stamp)
        } catch let error as InputError {
            throw error
        } catch {
            throw InputError(path: path, line: nil, message: "\(error)")
        }
    }

    /// Whether reading `path` now would give this table again.
    public func isCurrent(path: String) -> Bool {
        path == self.path && stamp != nil && RoutedNetworksTable.stamp(path) == stamp
    }

    /// The same reading: what a calibration and a history must share.
    public static func == (a: RoutedNetworksTable, b: RoutedNetworksTable) -> Bool { a === b }

    static func stamp(_ path: String) -> [Int64]? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return [Int64(st.st_dev), Int64(st.st_ino), Int64(st.st_size), Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec)]
    }
}
