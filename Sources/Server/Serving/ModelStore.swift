import Foundation
import IPInsights

/// One loaded model and what `/metrics` reports about it.
public struct LoadedModel: Sendable {
    public let model: Model
    /// Seconds since 1970 when the model file was last modified.
    public let fileModified: Double
    /// Seconds since 1970 when this model started serving.
    public let loadedAt: Double
    /// How long reading and checking the file took.
    public let loadSeconds: Double

    public init(model: Model, fileModified: Double, loadedAt: Double, loadSeconds: Double) {
        self.model = model
        self.fileModified = fileModified
        self.loadedAt = loadedAt
        self.loadSeconds = loadSeconds
    }
}

/// Where the routes take the model to score with: the file `ipsight serve`
/// watches, or the agent's detector (which its retrainer updates).
public protocol ServedModel: Sendable {
    /// The model requests score with now; nil until there is one (`/ping` says 503).
    var serving: LoadedModel? { get }
    /// Just the model, for requests: cheaper than `serving` where that reads the file's metadata.
    var model: Model? { get }
}

extension ServedModel {
    public var model: Model? { serving?.model }
}

/// Identifies one version of a file; a rename over it or a write into it changes it.
struct FileSignature: Equatable {
    var inode: UInt64
    var size: Int64
    var modifiedNanoseconds: Int64

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modifiedNanoseconds = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
    }

    var modifiedSeconds: Double { Double(modifiedNanoseconds) / 1e9 }
}

/// Holds the model that requests score with. A reload reads the new file completely
/// and checks it before swapping, so a request always sees one whole model, and a
/// bad file leaves the old one serving.
public final class ModelStore: ServedModel, @unchecked Sendable {
    public let path: String
    let log: @Sendable (String) -> Void
    /// Where reloads are counted for `/metrics`.
    let metrics: ServerMetrics?
    private let lock = NSLock()
    private var loaded: LoadedModel
    // The last file version tried, loaded or refused, so a bad file is reported once.
    private var lastTried: FileSignature?
    private var reloadCounts = (succeeded: 0, refused: 0)

    public init(path: String, log: @escaping @Sendable (String) -> Void = ModelStore.standardError,
                metrics: ServerMetrics? = nil) throws(ModelFileError) {
        self.path = path
        self.log = log
        self.metrics = metrics
        let signature = FileSignature(path: path)
        loaded = try ModelStore.load(path: path, signature: signature)
        lastTried = signature
    }

    public var current: LoadedModel { lock.withLock { loaded } }

    public var serving: LoadedModel? { current }

    /// Reloads attempted since start: (loaded and now serving, refused).
    public var reloads: (succeeded: Int, refused: Int) { lock.withLock { reloadCounts } }

    /// Loads the file and, if it is a good model, serves it from now on. Returns whether it did.
    @discardableResult
    public func reload(reason: String) -> Bool {
        let signature = FileSignature(path: path)
        lock.withLock { lastTried = signature }
        do {
            let fresh = try ModelStore.load(path: path, signature: signature)
            lock.withLock {
                loaded = fresh
                reloadCounts.succeeded += 1
            }
            metrics?.recordReload(loaded: true)
            log("ipsight serve: reloaded \(path) (\(reason)) in \(String(format: "%.3f", fresh.loadSeconds)) s")
            return true
        } catch {
            lock.withLock { reloadCounts.refused += 1 }
            metrics?.recordReload(loaded: false)
            log("ipsight serve: refused the new model (\(reason)): \(error); the previous model keeps serving")
            return false
        }
    }

    /// Reloads when the file differs from the last version tried.
    public func reloadIfChanged() {
        guard let signature = FileSignature(path: path) else { return }
        let changed = lock.withLock { signature != lastTried }
        if changed { reload(reason: "file changed") }
    }

    static func load(path: String, signature: FileSignature?) throws(ModelFileError) -> LoadedModel {
        let start = DispatchTime.now().uptimeNanoseconds
        let model = try ModelFile.load(path: path)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return LoadedModel(model: model, fileModified: signature?.modifiedSeconds ?? Date().timeIntervalSince1970,
                           loadedAt: Date().timeIntervalSince1970, loadSeconds: seconds)
    }

    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
