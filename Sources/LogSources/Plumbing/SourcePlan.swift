import IPSightCore
import Glibc

/// What one ingest run reads and how: the journal, files (`-` is standard
/// input), following or not, from the saved positions or from the end. The
/// agent and `ipsight parse` both describe their sources with it and read them
/// through a `SourceGroup`, so a line takes the same path to the rules in both.
public struct SourcePlan: Sendable {
    /// The journal to read; nil reads none.
    public var journal: JournalReader.Source?
    /// Journal match alternatives (each a list of `FIELD=value` terms), from the rules.
    public var journalMatches: [[String]] = []
    /// Start the journal after this cursor, not the saved one (`parse --after-cursor`).
    public var journalCursor: String?
    public var files: [String] = []
    /// Files one service writes in its own format: every whole line is a message
    /// of this identifier (`files = PATH:IDENT`, `parse --identifier`).
    public var fileIdentifiers: [String: String] = [:]
    /// Wait for new entries and lines, through rotation, until stopped.
    public var follow = false
    /// With nothing saved for a source, start at its end (only new entries).
    public var startAtEnd = false
    /// How traditional syslog timestamps are read.
    public var header = SyslogHeaderParser()
    /// Told, on the reading thread, when lines are lost because a rotated file
    /// could not be read any more.
    public var onGap: (@Sendable (FileGap) -> Void)?

    public init() {}

    /// The source keys, in the order the sources are made.
    public var keys: [String] {
        (journal == nil ? [] : [SourceKey.journal]) + files.map(SourceKey.file)
    }

    /// The sources, each starting after its position in `store`; only the one
    /// under `key` when given (reading again after a failure).
    ///
    /// A source that starts at its end with nothing saved has the end saved at
    /// once: a restart before its first new line must not skip that line.
    public func makeSources(store: any PositionStore, only key: String? = nil) throws -> [(key: String, source: any LogSource)] {
        let saved = try store.positions()
        var sources: [(key: String, source: any LogSource)] = []
        if let journal, key == nil || key == SourceKey.journal {
            var settings = JournalReader.Configuration(source: journal, matches: journalMatches, follow: follow,
                                                       cursor: journalCursor ?? saved[SourceKey.journal])
            if settings.cursor == nil && startAtEnd, let end = try JournalReader(configuration: settings).tailCursor() {
                try store.save([SourceKey.journal: end])
                settings.cursor = end
            }
            sources.append((SourceKey.journal, JournalReader(configuration: settings)))
        }
        for path in files where key == nil || key == SourceKey.file(path) {
            let decoder = LineDecoder(header: header, identifier: fileIdentifiers[path])
            if path == "-" {
                sources.append((SourceKey.file(path), FileSource(fileDescriptor: 0, decoder: decoder)))
                continue
            }
            var position = saved[SourceKey.file(path)].flatMap { FilePosition(serialized: $0) }
            if position == nil && startAtEnd, let end = Self.endPosition(of: path) {
                try store.save([SourceKey.file(path): end.serialized])
                position = end
            }
            sources.append((SourceKey.file(path), FileSource(path: path, follow: follow, from: position, decoder: decoder,
                                                             onGap: onGap)))
        }
        return sources
    }

    /// Makes the sources and starts reading them into `group`.
    public func start(in group: SourceGroup, store: any PositionStore, only key: String? = nil) throws {
        for (key, source) in try makeSources(store: store, only: key) { group.add(key, source) }
    }

    /// The position at the current end of a file; nil when the file does not
    /// exist yet (then it is read whole once it appears: everything in it is new).
    static func endPosition(of path: String) -> FilePosition? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        // headHash 0: the first line is not checked on resume (it was never read).
        return FilePosition(path: path, device: UInt64(st.st_dev), inode: UInt64(st.st_ino), offset: UInt64(st.st_size), headHash: 0,
                            modified: Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec))
    }
}
