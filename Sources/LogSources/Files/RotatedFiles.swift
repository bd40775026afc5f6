#if canImport(Glibc)
import IPSightCore
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One file beside a followed log that logrotate could have made from it: a
/// numbered (`auth.log.1`, `auth.log.2.gz`) or dated (`auth.log-20261206`,
/// any `dateformat`) generation, plain or compressed.
struct RotatedFile {
    enum Format: Equatable {
        case plain
        case gzip
        /// Compressed in a format the follower does not read (xz, bzip2, zstd...).
        case unreadable(String)
    }

    let path: String
    /// Open read-only; the caller closes it (`RotatedFiles.close`) or keeps it.
    var fd: Int32
    let device: UInt64
    let inode: UInt64
    let size: UInt64
    /// Nanoseconds since the epoch.
    let modified: Int64
    let format: Format
    /// Names of one scheme share a family; `key` orders a family's generations.
    let family: String
    let key: GenerationKey
    private var cachedHead: UInt64??

    init(path: String, fd: Int32, st: stat, format: Format, family: String, key: GenerationKey) {
        self.path = path
        self.fd = fd
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = UInt64(st.st_size)
        modified = modificationTime(st)
        self.format = format
        self.family = family
        self.key = key
    }

    var readable: Bool { format == .plain || format == .gzip }

    /// The hash of its (decompressed) first line, as `FilePosition.headHash`.
    mutating func head() -> UInt64? {
        if let cachedHead { return cachedHead }
        let value: UInt64?
        switch format {
        case .plain: value = FileFollower.firstLineHash(fd: fd)
        case .gzip: value = GzipStream.firstLineHash(fd: fd)
        case .unreadable: value = nil
        }
        cachedHead = .some(value)
        return value
    }

    /// Its uncompressed length when known: the size, or a gzip trailer's
    /// length (modulo 4 GiB, so only below that); nil when unknown.
    func length() -> UInt64? {
        switch format {
        case .plain: return size
        case .gzip:
            guard size >= 18 else { return nil }
            var trailer = [UInt8](repeating: 0, count: 4)
            let n = trailer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 4, off_t(size - 4)) }
            guard n == 4 else { return nil }
            return UInt64(trailer[0]) | UInt64(trailer[1]) << 8 | UInt64(trailer[2]) << 16 | UInt64(trailer[3]) << 24
        case .unreadable: return nil
        }
    }

    /// What a warning calls it: the path and, for one not read, why.
    var described: String {
        if case .unreadable(let kind) = format { return "\(path) (\(kind), \(size) bytes compressed)" }
        return path
    }
}

/// A file's modification time in nanoseconds since the epoch.
func modificationTime(_ st: stat) -> Int64 {
    Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec)
}

/// Orders the generations of one naming scheme, oldest first.
enum GenerationKey: Comparable {
    /// `.1` is the newest: a larger number is older.
    case numbered(Int)
    /// Dates sort as text (logrotate requires its `dateformat` to).
    case dated(String)

    static func < (a: GenerationKey, b: GenerationKey) -> Bool {
        switch (a, b) {
        case (.numbered(let x), .numbered(let y)): return x > y
        case (.dated(let x), .dated(let y)): return x < y
        case (.numbered, .dated): return true
        case (.dated, .numbered): return false
        }
    }
}

/// Finds the rotated generations of a followed file in its directory.
///
/// Only names logrotate could have made from the live name are considered:
/// the live name, a separator (`.`, `-`, `_`), digits (a number, or a date in
/// any `dateformat` made of digits and separators), then optionally a
/// compression suffix. With logrotate's `extension` option the live name's
/// extension comes after the digits (`auth.1.log`, `auth-20261206.log.gz`):
/// those names form a second list, used only once the followed file is found
/// in it, since such a name could also belong to an unrelated file. Nothing
/// else in the directory is ever opened.
enum RotatedFiles {
    /// Suffixes logrotate's `compressext` commonly gives; only gzip is read.
    static let compressionSuffixes: Set<String> = ["gz", "xz", "bz2", "zst", "lz4", "lzma", "lz", "lzo", "Z", "br", "zip", "7z"]

    /// The candidates, oldest first: those named after the live name itself,
    /// and those with the live name's extension after the digits.
    static func scan(_ livePath: String) -> (plain: [RotatedFile], extended: [RotatedFile]) {
        let slash = livePath.lastIndex(of: "/")
        let directory = slash.map { $0 == livePath.startIndex ? "/" : String(livePath[..<$0]) } ?? "."
        let liveName = Array((slash.map { String(livePath[livePath.index(after: $0)...]) } ?? livePath).utf8)
        guard !liveName.isEmpty, let dir = opendir(directory) else { return ([], []) }
        defer { closedir(dir) }
        let prefix = slash.map { String(livePath[...$0]) } ?? ""
        var plain: [RotatedFile] = []
        var extended: [RotatedFile] = []
        while let entry = readdir(dir) {
            let name: [UInt8] = withUnsafeBytes(of: &entry.pointee.d_name) { raw in
                Array(raw.prefix { $0 != 0 })
            }
            guard let parsed = parse(name, liveName: liveName),
                  let nameText = String(validating: name, as: UTF8.self) else { continue }
            guard let file = open(prefix + nameText, suffix: parsed.suffix, family: parsed.family, key: parsed.key) else { continue }
            if parsed.extended { extended.append(file) } else { plain.append(file) }
        }
        return (order(plain), order(extended))
    }

    static func close(_ files: [RotatedFile], keeping kept: Int32 = -1) {
        for file in files where file.fd >= 0 && file.fd != kept { Glibc.close(file.fd) }
    }

    /// Splits a directory entry's name into scheme and generation; nil for a name
    /// logrotate would not have made from `liveName`.
    static func parse(_ name: [UInt8], liveName: [UInt8]) -> (extended: Bool, family: String, key: GenerationKey, suffix: String?)? {
        if name.count > liveName.count, name.starts(with: liveName),
           let rest = parseRest(name[liveName.count...], extension: nil) {
            return (false, rest.family, rest.key, rest.suffix)
        }
        // logrotate's `extension`: the stem, the generation, then the extension.
        if let dot = liveName.lastIndex(of: UInt8(ascii: ".")), dot > 0, dot < liveName.count - 1,
           name.count > dot, name.starts(with: liveName[..<dot]),
           let rest = parseRest(name[dot...], extension: liveName[dot...]) {
            return (true, rest.family, rest.key, rest.suffix)
        }
        return nil
    }

    private static func parseRest(_ rest: ArraySlice<UInt8>, extension ext: ArraySlice<UInt8>?) -> (family: String, key: GenerationKey, suffix: String?)? {
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        func isSeparator(_ b: UInt8) -> Bool { b == UInt8(ascii: ".") || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") }
        var i = rest.startIndex
        guard i < rest.endIndex, isSeparator(rest[i]) else { return nil }
        let separator = rest[i]
        i += 1
        // Digit groups joined by single separators: `1`, `20261206`, `2026-12-06-1796599101`.
        let tokenStart = i
        guard i < rest.endIndex, isDigit(rest[i]) else { return nil }
        var onlyDigits = true
        while i < rest.endIndex {
            if isDigit(rest[i]) {
                i += 1
            } else if isSeparator(rest[i]), i + 1 < rest.endIndex, isDigit(rest[i + 1]) {
                onlyDigits = false
                i += 1
            } else {
                break
            }
        }
        let token = rest[tokenStart..<i]
        if let ext {
            guard rest[i...].starts(with: ext) else { return nil }
            i += ext.count
        }
        var suffix: String?
        if i < rest.endIndex {
            guard rest[i] == UInt8(ascii: "."), let text = String(validating: rest[(i + 1)...], as: UTF8.self),
                  compressionSuffixes.contains(text) else { return nil }
            suffix = text
        }
        let tokenText = String(decoding: token, as: UTF8.self)
        // `.N` is logrotate's numbering; a dot and a long run of digits is a date
        // (`dateformat .%Y%m%d`, `.%s`): no one keeps 100,000 numbered generations.
        if separator == UInt8(ascii: "."), onlyDigits, token.count <= 5, let number = Int(tokenText) {
            return ("numbered", .numbered(number), suffix)
        }
        let shape = String(decoding: [separator] + token.map { isDigit($0) ? UInt8(ascii: "9") : $0 }, as: UTF8.self)
        return ("dated" + shape, .dated(tokenText), suffix)
    }

    private static func open(_ path: String, suffix: String?, family: String, key: GenerationKey) -> RotatedFile? {
        // No symbolic links (they could lead anywhere) and no waiting on a FIFO.
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            Glibc.close(fd)
            return nil
        }
        var magic = [UInt8](repeating: 0, count: 6)
        let n = magic.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 6, 0) }
        let start = magic.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[0..<max(n, 0)]) }
        let format: RotatedFile.Format
        if GzipStream.isGzip(start) {
            format = .gzip
        } else if let suffix, st.st_size > 0 {
            format = .unreadable(compressionName(start, suffix: suffix))
        } else {
            format = .plain
        }
        return RotatedFile(path: path, fd: fd, st: st, format: format, family: family, key: key)
    }

    private static func compressionName(_ magic: UnsafeRawBufferPointer, suffix: String) -> String {
        if magic.starts(with: [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) { return "xz" }
        if magic.starts(with: [0x42, 0x5A, 0x68]) { return "bzip2" }
        if magic.starts(with: [0x28, 0xB5, 0x2F, 0xFD]) { return "zstd" }
        if magic.starts(with: [0x04, 0x22, 0x4D, 0x18]) { return "lz4" }
        if magic.starts(with: [0x1F, 0x9D]) { return "compress (.Z)" }
        return suffix == "gz" ? "not gzip data despite .gz" : "." + suffix
    }

    /// Oldest first. Within one scheme the names say the order; if schemes are
    /// mixed (the configuration changed), the modification times do, which
    /// logrotate keeps through renames and compression.
    private static func order(_ files: [RotatedFile]) -> [RotatedFile] {
        // One generation may exist twice while logrotate compresses it
        // (`x.1` and `x.1.gz`): keep the plain file, which is complete.
        var best: [String: RotatedFile] = [:]
        func rank(_ f: RotatedFile) -> Int { f.format == .plain ? 0 : f.format == .gzip ? 1 : 2 }
        for file in files {
            let id = "\(file.family)|\(file.key)"
            if let other = best[id] {
                if rank(file) < rank(other) {
                    close([other])
                    best[id] = file
                } else {
                    close([file])
                }
            } else {
                best[id] = file
            }
        }
        let unique = Array(best.values)
        let oneFamily = Set(unique.map(\.family)).count <= 1
        return unique.sorted { a, b in
            if oneFamily || a.modified == b.modified {
                if a.family != b.family { return a.family < b.family }
                return a.key < b.key
            }
            return a.modified < b.modified
        }
    }
}
