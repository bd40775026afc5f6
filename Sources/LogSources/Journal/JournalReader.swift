import IPSightCore
import CSystemd
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads the systemd journal through sd-journal, on the thread that calls
/// `nextBatch` (an `sd_journal` handle is not shared between threads: the
/// journal is opened by the first call and closed by the last one, so a
/// `SourceGroup` thread owns it from start to end).
///
/// Each record carries its cursor; start a new reader `after:` the cursor of the
/// last record processed to resume with nothing lost or repeated. Journal file
/// rotation and vacuuming (`SD_JOURNAL_INVALIDATE`) are survived by seeking
/// back to the last cursor read.
public final class JournalReader: LogSource, @unchecked Sendable {
    public enum Source: Sendable, Equatable {
        /// The local machine's journal (system and user journals readable to us).
        case local
        /// A directory of journal files (`journalctl -D`).
        case directory(String)
        /// Journal files (`journalctl --file`).
        case files([String])
    }

    public struct Configuration: Sendable {
        public var source: Source
        /// Match alternatives, each a list of `FIELD=value` terms that must all hold
        /// (values of one field are alternatives); empty reads everything.
        public var matches: [[String]]
        /// Keep waiting for new entries at the end of the journal.
        public var follow: Bool
        /// Start after the entry with this cursor (the last one processed).
        public var cursor: String?
        /// Start at the end of the journal when there is no cursor (only new entries).
        public var startAtEnd: Bool
        public var batchSize: Int
        /// How long one `sd_journal_wait` lasts: a stop request is noticed, and new
        /// entries are looked for, at least this often. journald coalesces its change
        /// notifications over 250 ms, but an entry is readable as soon as it is
        /// written, so polling at 50 ms cuts the delay to a decision by about five.
        public var waitInterval: Double
        public var maxMessageLength: Int

        public init(source: Source = .local, matches: [[String]] = [], follow: Bool = false, cursor: String? = nil,
                    startAtEnd: Bool = false, batchSize: Int = 512,
                    waitInterval: Double = 0.05, maxMessageLength: Int = 64 * 1024) {
            self.source = source
            self.matches = matches
            self.follow = follow
            self.cursor = cursor
            self.startAtEnd = startAtEnd
            self.batchSize = batchSize
            self.waitInterval = waitInterval
            self.maxMessageLength = maxMessageLength
        }
    }

    public let configuration: Configuration
    private let stopped = Atomic<Bool>(false)
    /// Open from the first `nextBatch` until the end, `stop()` or a failure.
    private var journal: OpaquePointer?
    private var finished = false
    /// The journal stands on the next entry to hand out (after a seek).
    private var standing = false
    /// The cursor of the last entry handed out: where to seek back after rotation.
    private var lastCursor: String?
    private var refused = SkipCounts()
    private let skipCounts = Mutex(SkipCounts())
    /// Nil when a match term is malformed: the first `nextBatch` says so.
    private let filter: Result<JournalFilter, SourceError>
    /// The fields read from each entry: the record's (`recordFields`), then the filter's others.
    private let names: [[UInt8]]
    /// Where each of the filter's fields is among `names`.
    private let filterFields: [Int]
    /// The current entry's field values, copied out of sd-journal (its pointers
    /// are valid only until the next enumeration call), and their spans in it.
    private var scratch: [UInt8] = []
    private var spans: [Range<Int>?]
    /// The first bytes of `names`: other fields are passed over at once.
    private let firstBytes: [Bool]

    public init(configuration: Configuration) {
        self.configuration = configuration
        lastCursor = configuration.cursor
        do throws(SourceError) { filter = .success(try JournalFilter(configuration.matches)) } catch { filter = .failure(error) }
        var names = Self.recordFields
        var filterFields: [Int] = []
        for name in (try? filter.get())?.names ?? [] {
            if let index = names.firstIndex(of: name) { filterFields.append(index) } else {
                names.append(name)
                filterFields.append(names.count - 1)
            }
        }
        self.names = names
        self.filterFields = filterFields
        var firstBytes = [Bool](repeating: false, count: 256)
        for name in names { firstBytes[Int(name[0])] = true }
        self.firstBytes = firstBytes
        spans = Array(repeating: nil, count: names.count)
        scratch.reserveCapacity(1 << 16)
    }

    deinit {
        if let journal { sd_journal_close(journal) }
    }

    /// Entries skipped as too long or not UTF-8.
    public var skips: SkipCounts { skipCounts.withLock { $0 } }

    /// The cursor of the journal's last entry, or nil when it is empty. A consumer
    /// that starts at the end saves it at once, so that a restart before the first
    /// new entry resumes there instead of skipping to a later end.
    public func tailCursor() throws(SourceError) -> String? {
        let journal = try open()
        defer { sd_journal_close(journal) }
        sd_journal_seek_tail(journal)
        let p = sd_journal_previous(journal)
        guard p >= 0 else { throw SourceError.journal(operation: "previous", code: p) }
        guard p > 0 else { return nil }
        var pointer: UnsafeMutablePointer<CChar>?
        let r = sd_journal_get_cursor(journal, &pointer)
        guard r >= 0, let pointer else { throw SourceError.journal(operation: "get cursor", code: r) }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// Ends `nextBatch` within one wait interval, from any thread.
    public func stop() { stopped.store(true, ordering: .relaxed) }

    /// The next entries, waiting for new ones when following; nil at the end of
    /// the journal (not following) or after `stop()`, when the journal is closed.
    public func nextBatch() throws(SourceError) -> [LogRecord]? {
        guard !finished else { return nil }
        do {
            let filter = try filter.get()
            if journal == nil {
                let opened = try open()
                journal = opened
                standing = try seek(opened, after: configuration.cursor)
            }
            if let records = try read(journal!, filter) { return records }
        } catch {
            close()
            throw error
        }
        close()
        return nil
    }

    private func close() {
        finished = true
        if let journal { sd_journal_close(journal) }
        journal = nil
    }

    private func open() throws(SourceError) -> OpaquePointer {
        var journal: OpaquePointer?
        var r: Int32
        switch configuration.source {
        case .local:
            r = sd_journal_open(&journal, Int32(SD_JOURNAL_LOCAL_ONLY))
        case .directory(let path):
            r = sd_journal_open_directory(&journal, path, 0)
        case .files(let paths):
            var cStrings = paths.map { strdup($0) }
            cStrings.append(nil)
            r = cStrings.withUnsafeMutableBufferPointer { buffer in
                buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) {
                    sd_journal_open_files(&journal, $0, 0)
                }
            }
            for p in cStrings { free(p) }
        }
        guard r >= 0, let journal else { throw SourceError.journal(operation: "open", code: r) }
        // Fields are read up to one byte past the longest message kept: a longer
        // MESSAGE then shows as longer than the limit and is refused and counted.
        // With the default (64 KiB) a compressed one came back cut to fit, looked
        // like a short line and passed unnoticed; an uncompressed one did not.
        sd_journal_set_data_threshold(journal, configuration.maxMessageLength + Self.recordFields[0].count + 1)
        return journal
    }

    /// Positions the journal so that `sd_journal_next` returns the first entry to hand out.
    /// Returns true if the journal already stands on that entry.
    private func seek(_ journal: OpaquePointer, after cursor: String?) throws(SourceError) -> Bool {
        if let cursor {
            let r = sd_journal_seek_cursor(journal, cursor)
            guard r >= 0 else { throw SourceError.journal(operation: "seek to the saved cursor", code: r) }
            let n = sd_journal_next(journal)
            guard n >= 0 else { throw SourceError.journal(operation: "next", code: n) }
            if n == 0 { return false }
            // The saved entry itself was processed; if it is gone we landed on a later one.
            return sd_journal_test_cursor(journal, cursor) <= 0
        }
        if configuration.startAtEnd {
            sd_journal_seek_tail(journal)
            // Step onto the last entry so that `next` returns only newer ones.
            let p = sd_journal_previous(journal)
            guard p >= 0 else { throw SourceError.journal(operation: "previous", code: p) }
        } else {
            sd_journal_seek_head(journal)
        }
        return false
    }

    /// Up to a batch of records; waits while following and there are none; nil
    /// at the end or once stopped.
    private func read(_ journal: OpaquePointer, _ filter: JournalFilter) throws(SourceError) -> [LogRecord]? {
        var records: [LogRecord] = []
        records.reserveCapacity(configuration.batchSize)
        let waitMicros = UInt64(configuration.waitInterval * 1_000_000)
        while !stopped.load(ordering: .relaxed) {
            let advanced: Int32 = standing ? 1 : sd_journal_next(journal)
            standing = false
            if advanced < 0 { throw SourceError.journal(operation: "next", code: advanced) }
            if advanced > 0 {
                if let record = record(journal, filter) { records.append(record) }
                if records.count >= configuration.batchSize { break }
                continue
            }
            // At the end: hand out what we have, then wait or finish.
            if !records.isEmpty { break }
            // Entries refused since the last batch count now, not when one next passes.
            publishSkips()
            guard configuration.follow else { return nil }
            let w = sd_journal_wait(journal, waitMicros)
            if w < 0 { throw SourceError.journal(operation: "wait", code: w) }
            if w == Int32(SD_JOURNAL_INVALIDATE), let cursor = lastCursor {
                // Files were added or removed (rotation, vacuum): find our place again.
                standing = try seek(journal, after: cursor)
            }
        }
        publishSkips()
        return records.isEmpty ? nil : records
    }

    private func publishSkips() {
        let refused = self.refused
        skipCounts.withLock { $0 = refused }
    }

    /// The fields a record is made of, by their position here.
    static let recordFields: [[UInt8]] = [
        "MESSAGE=", "SYSLOG_IDENTIFIER=", "SYSLOG_PID=", "_SYSTEMD_UNIT=", "_COMM=", "_UID=", "_PID=", "_HOSTNAME=", "_EXE=",
    ].map { Array($0.utf8) }

    /// The current entry as a record when the filter passes it; nil when it does
    /// not, or is refused (too long, not text), or has no message.
    private func record(_ journal: OpaquePointer, _ filter: JournalFilter) -> LogRecord? {
        let tooLong = copyFields(journal)
        func value(_ index: Int) -> UnsafeRawBufferPointer? {
            guard let span = spans[index] else { return nil }
            return scratch.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[span]) }
        }
        guard filter.passes({ value(filterFields[$0]) }) else { return nil }
        var cursorPointer: UnsafeMutablePointer<CChar>?
        var cursor: String?
        if sd_journal_get_cursor(journal, &cursorPointer) >= 0, let cursorPointer {
            cursor = String(cString: cursorPointer)
            free(cursorPointer)
        }
        // A refused entry still moves the resume point past it.
        if let cursor { lastCursor = cursor }
        if tooLong || (spans[0] == nil && messageIsUnreadable(journal)) {
            refused.longLines += 1
            return nil
        }
        guard let bytes = value(0) else { return nil }
        let hasNul = bytes.count > 0 && memchr(bytes.baseAddress!, 0, bytes.count) != nil
        guard !hasNul, let message = Self.string(bytes) else {
            refused.binaryLines += 1
            return nil
        }
        func text(_ index: Int) -> String? { value(index).flatMap(Self.string) }
        let trusted = TrustedFields(systemdUnit: text(3), comm: text(4), uid: text(5), pid: text(6),
                                    hostname: text(7), exe: text(8))
        var usec: UInt64 = 0
        let time = sd_journal_get_realtime_usec(journal, &usec) >= 0 ? Double(usec) / 1_000_000 : nil
        return LogRecord(time: time, host: trusted.hostname, identifier: text(1) ?? trusted.comm,
                         pid: (text(2) ?? trusted.pid).flatMap { Int($0) }, message: message, trusted: trusted,
                         position: cursor.map { .journal(cursor: $0) } ?? .none)
    }

    /// Whether the entry has a MESSAGE that the enumeration skipped as unavailable
    /// (too large to decompress, or compressed in a way this libsystemd cannot read):
    /// refused and counted like an over-long line, not passed over in silence.
    private func messageIsUnreadable(_ journal: OpaquePointer) -> Bool {
        var pointer: UnsafeRawPointer?
        var length = 0
        let r = sd_journal_get_data(journal, "MESSAGE", &pointer, &length)
        return r < 0 && r != -ENOENT
    }

    /// Copies the current entry's values of `names` into `scratch`, in one pass
    /// over its fields (each `sd_journal_get_data` call would scan them again).
    /// Returns true when the message is over the length limit (it is not copied).
    private func copyFields(_ journal: OpaquePointer) -> Bool {
        scratch.removeAll(keepingCapacity: true)
        for index in spans.indices { spans[index] = nil }
        var tooLong = false
        sd_journal_restart_data(journal)
        var pointer: UnsafeRawPointer?
        var length = 0
        var found = 0
        while found < names.count, sd_journal_enumerate_available_data(journal, &pointer, &length) > 0 {
            guard let pointer, length > 0 else { continue }
            let first = pointer.load(as: UInt8.self)
            guard firstBytes[Int(first)] else { continue }
            for index in names.indices where spans[index] == nil {
                let matched = names[index].withUnsafeBytes { name in
                    length >= name.count && name[0] == first && memcmp(name.baseAddress!, pointer, name.count) == 0
                }
                guard matched else { continue }
                let nameLength = names[index].count
                let value = UnsafeRawBufferPointer(start: pointer + nameLength, count: length - nameLength)
                if index == 0 && value.count > configuration.maxMessageLength {
                    tooLong = true
                } else if index == 0 || value.count <= 4096 {
                    spans[index] = scratch.count..<scratch.count + value.count
                    scratch.append(contentsOf: value)
                }
                found += 1
                break
            }
        }
        return tooLong
    }

    /// UTF-8 text, with a fast path for ASCII; nil if invalid.
    static func string(_ raw: UnsafeRawBufferPointer) -> String? {
        let bytes = raw.assumingMemoryBound(to: UInt8.self)
        for b in bytes where b >= 0x80 { return String(validating: bytes, as: UTF8.self) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
