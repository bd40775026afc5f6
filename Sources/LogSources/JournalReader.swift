import IPSightCore
import CSystemd
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads the systemd journal through sd-journal on one dedicated thread (an
/// `sd_journal` handle must stay on the thread that opened it) and hands out
/// batches of records through a bounded queue.
///
/// Each record carries its cursor; start a new reader `after:` the cursor of the
/// last record processed to resume with nothing lost or repeated. Journal file
/// rotation and vacuuming (`SD_JOURNAL_INVALIDATE`) are survived by seeking
/// back to the last cursor read.
public final class JournalReader: @unchecked Sendable {
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
        /// Match alternatives, each a list of `FIELD=value` terms that must all hold;
        /// empty reads everything.
        public var matches: [[String]]
        /// Keep waiting for new entries at the end of the journal.
        public var follow: Bool
        /// Start after the entry with this cursor (the last one processed).
        public var cursor: String?
        /// Start at the end of the journal when there is no cursor (only new entries).
        public var startAtEnd: Bool
        public var batchSize: Int
        public var queueCapacity: Int
        /// How long one `sd_journal_wait` lasts: a stop request is noticed, and new
        /// entries are looked for, at least this often. journald coalesces its change
        /// notifications over 250 ms, but an entry is readable as soon as it is
        /// written, so polling at 50 ms cuts the delay to a decision by about five.
        public var waitInterval: Double
        public var maxMessageLength: Int

        public init(source: Source = .local, matches: [[String]] = [], follow: Bool = false, cursor: String? = nil,
                    startAtEnd: Bool = false, batchSize: Int = 512, queueCapacity: Int = 8,
                    waitInterval: Double = 0.05, maxMessageLength: Int = 64 * 1024) {
            self.source = source
            self.matches = matches
            self.follow = follow
            self.cursor = cursor
            self.startAtEnd = startAtEnd
            self.batchSize = batchSize
            self.queueCapacity = queueCapacity
            self.waitInterval = waitInterval
            self.maxMessageLength = maxMessageLength
        }
    }

    public let configuration: Configuration
    private let queue: BatchQueue<RawJournalBatch>
    private var thread: pthread_t?
    /// Entries skipped as too long or not UTF-8, counted by the consumer as it decodes.
    public private(set) var skips = SkipCounts()

    public init(configuration: Configuration) {
        self.configuration = configuration
        queue = BatchQueue(capacity: configuration.queueCapacity)
    }

    deinit {
        stop()
        if let thread {
            // The last reference may be dropped by the reading thread itself.
            if pthread_equal(thread, pthread_self()) != 0 { pthread_detach(thread) } else { pthread_join(thread, nil) }
        }
    }

    /// Starts the reading thread.
    public func start() throws(SourceError) {
        precondition(thread == nil, "a JournalReader starts once")
        let box = Unmanaged.passRetained(self)
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { raw in
            let reader = Unmanaged<JournalReader>.fromOpaque(raw!).takeRetainedValue()
            reader.run()
            return nil
        }, box.toOpaque())
        guard result == 0 else {
            box.release()
            throw SourceError.io(path: nil, operation: "pthread_create", errno: result)
        }
        thread = handle
    }

    /// The cursor of the last entry matching the configuration's matches, or nil
    /// when none exists. A consumer that starts at the end saves it at once, so that
    /// a restart before the first new entry resumes there instead of skipping to a
    /// later end.
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

    /// Stops reading: a waiting consumer sees the end at once, the thread
    /// notices within one wait interval and closes the journal.
    public func stop() {
        queue.cancel()
    }

    /// Waits for the reading thread to end (after `stop()` or the end of input).
    public func join() {
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
    }

    /// The next batch, blocking the calling thread; nil at the end (not following).
    /// One consumer at a time.
    public func nextBatch() throws(SourceError) -> [LogRecord]? {
        try queue.pop().map(decode)
    }

    /// The next batch, suspending the calling task; nil at the end (not following).
    /// One consumer at a time.
    public func next() async throws -> [LogRecord]? {
        try await queue.next().map(decode)
    }

    // MARK: - The reading thread

    private func run() {
        var journal: OpaquePointer?
        do {
            journal = try open()
            try read(journal!)
            queue.finish()
        } catch {
            queue.finish(error: error)
        }
        if let journal { sd_journal_close(journal) }
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
        for alternative in configuration.matches {
            for term in alternative {
                r = sd_journal_add_match(journal, term, 0)
                if r < 0 {
                    sd_journal_close(journal)
                    throw SourceError.journal(operation: "add match \(term)", code: r)
                }
            }
            r = sd_journal_add_disjunction(journal)
            if r < 0 {
                sd_journal_close(journal)
                throw SourceError.journal(operation: "add disjunction", code: r)
            }
        }
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

    private func read(_ journal: OpaquePointer) throws(SourceError) {
        var standing = try seek(journal, after: configuration.cursor)
        var lastCursor = configuration.cursor
        var batch = RawJournalBatch()
        let waitMicros = UInt64(configuration.waitInterval * 1_000_000)
        func push() -> Bool {
            if let cursor = batch.cursor(batch.count - 1) { lastCursor = cursor }
            defer { batch = RawJournalBatch() }
            return queue.push(batch)
        }
        while true {
            // Cancellation is noticed at the next push, or here while waiting.
            let advanced: Int32 = standing ? 1 : sd_journal_next(journal)
            standing = false
            if advanced < 0 { throw SourceError.journal(operation: "next", code: advanced) }
            if advanced > 0 {
                copyEntry(journal, into: &batch)
                if batch.count >= configuration.batchSize {
                    guard push() else { return }
                }
                continue
            }
            // At the end: hand out what we have, then wait or finish.
            if batch.count > 0 {
                guard push() else { return }
            }
            guard configuration.follow, !queue.isCancelled else { return }
            let w = sd_journal_wait(journal, waitMicros)
            if w < 0 { throw SourceError.journal(operation: "wait", code: w) }
            if w == Int32(SD_JOURNAL_INVALIDATE), let cursor = lastCursor {
                // Files were added or removed (rotation, vacuum): find our place again.
                standing = try seek(journal, after: cursor)
            }
        }
    }

    /// The fields a record is made of, by their position in `fieldNames`.
    static let fieldNames: [[UInt8]] = [
        "MESSAGE=", "SYSLOG_IDENTIFIER=", "SYSLOG_PID=", "_SYSTEMD_UNIT=", "_COMM=", "_UID=", "_PID=", "_HOSTNAME=", "_EXE=",
    ].map { Array($0.utf8) }

    /// Copies the current entry's fields, cursor and time into the batch. This
    /// is all the reading thread does per entry; making strings and records is
    /// left to the consumer's thread, so the two run side by side.
    private func copyEntry(_ journal: OpaquePointer, into batch: inout RawJournalBatch) {
        batch.beginEntry()
        var cursorPointer: UnsafeMutablePointer<CChar>?
        if sd_journal_get_cursor(journal, &cursorPointer) >= 0, let cursorPointer {
            batch.setField(RawJournalBatch.cursorIndex, UnsafeRawBufferPointer(start: cursorPointer, count: strlen(cursorPointer)))
            free(cursorPointer)
        }
        // One pass over the entry's fields: each sd_journal_get_data call would
        // scan them again.
        sd_journal_restart_data(journal)
        var pointer: UnsafeRawPointer?
        var length = 0
        var found = 0
        while found < Self.fieldNames.count, sd_journal_enumerate_available_data(journal, &pointer, &length) > 0 {
            guard let pointer else { continue }
            let first = pointer.load(as: UInt8.self)
            guard first == UInt8(ascii: "M") || first == UInt8(ascii: "S") || first == UInt8(ascii: "_") else { continue }
            for index in 0..<Self.fieldNames.count where !batch.hasField(index) {
                let matched = Self.fieldNames[index].withUnsafeBytes { name in
                    length >= name.count && name[0] == first && memcmp(name.baseAddress!, pointer, name.count) == 0
                }
                guard matched else { continue }
                let nameLength = Self.fieldNames[index].count
                let value = UnsafeRawBufferPointer(start: pointer + nameLength, count: length - nameLength)
                if index == 0 && value.count > configuration.maxMessageLength {
                    batch.markTooLong()
                } else if index == 0 || value.count <= 4096 {
                    batch.setField(index, value)
                }
                found += 1
                break
            }
        }
        var usec: UInt64 = 0
        batch.setTime(sd_journal_get_realtime_usec(journal, &usec) >= 0 ? Double(usec) / 1_000_000 : nil)
    }

    /// Records from copied entries, on the consumer's thread.
    private func decode(_ batch: RawJournalBatch) -> [LogRecord] {
        var records: [LogRecord] = []
        records.reserveCapacity(batch.count)
        batch.withBytes { raw in
            for entry in 0..<batch.count {
                if batch.isTooLong(entry) {
                    skips.longLines += 1
                    continue
                }
                guard let bytes = batch.field(entry, 0, in: raw) else { continue }
                guard !bytes.contains(0), let message = Self.string(bytes) else {
                    skips.binaryLines += 1
                    continue
                }
                func text(_ index: Int) -> String? { batch.field(entry, index, in: raw).flatMap(Self.string) }
                let trusted = TrustedFields(systemdUnit: text(3), comm: text(4), uid: text(5), pid: text(6),
                                            hostname: text(7), exe: text(8))
                let identifier = text(1) ?? trusted.comm
                let pid = (text(2) ?? trusted.pid).flatMap { Int($0) }
                let cursor = batch.field(entry, RawJournalBatch.cursorIndex, in: raw).map { String(decoding: $0, as: UTF8.self) }
                records.append(LogRecord(time: batch.time(entry), host: trusted.hostname, identifier: identifier, pid: pid,
                                         message: message, trusted: trusted, position: cursor.map { .journal(cursor: $0) } ?? .none))
            }
        }
        return records
    }

    /// UTF-8 text, with a fast path for ASCII; nil if invalid.
    static func string(_ raw: UnsafeRawBufferPointer) -> String? {
        let bytes = raw.assumingMemoryBound(to: UInt8.self)
        for b in bytes where b >= 0x80 { return String(validating: bytes, as: UTF8.self) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
