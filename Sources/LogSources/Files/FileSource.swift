import IPSightCore
import Synchronization

/// A followed (or once-read) log file as a `LogSource`: the file follower and
/// the syslog line decoder together, with a position on every record.
public final class FileSource: LogSource, @unchecked Sendable {
    private let follower: FileFollower
    private var decoder: LineDecoder
    /// Standard input: read once, never resumed, so its records carry no position.
    private let resumable: Bool
    private let stopped = Atomic<Bool>(false)
    private var refused = 0

    /// - Parameter onGap: told (on the reading thread) each time lines are lost
    ///   because a rotated file cannot be read any more.
    public init(path: String, follow: Bool, from position: FilePosition? = nil,
                decoder: LineDecoder = LineDecoder(), onGap: (@Sendable (FileGap) -> Void)? = nil) {
        follower = FileFollower(path: path, follow: follow, from: position)
        follower.onGap = onGap
        self.decoder = decoder
        resumable = true
    }

    /// Standard input or another open descriptor, read to its end.
    public init(fileDescriptor: Int32, decoder: LineDecoder = LineDecoder()) {
        follower = FileFollower(fileDescriptor: fileDescriptor)
        self.decoder = decoder
        resumable = false
    }

    public func stop() { stopped.store(true, ordering: .relaxed) }

    public var skips: SkipCounts {
        var counts = follower.skips
        counts.binaryLines += refused
        return counts
    }

    public func nextBatch() throws(SourceError) -> [LogRecord]? {
        var records: [LogRecord] = []
        while !stopped.load(ordering: .relaxed) {
            let progress: FileFollower.Progress
            do {
                progress = try follower.poll { line, position in
                    if var record = decoder.decode(line, position: resumable ? .file(position) : .none) {
                        record.line = follower.lineNumber
                        records.append(record)
                    } else {
                        refused += 1
                    }
                }
            } catch let error as SourceError {
                throw error
            } catch {
                throw SourceError.io(path: follower.path, operation: "read", errno: errnoOf(error))
            }
            switch progress {
            case .lines:
                if !records.isEmpty { return records }
            case .idle:
                Clock.sleep(follower.pollInterval)
            case .end:
                return records.isEmpty ? nil : records
            }
        }
        return nil
    }
}
