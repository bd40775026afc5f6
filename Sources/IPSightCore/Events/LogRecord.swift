/// One line of log text and where it came from, as a source hands it to the rules.
///
/// `message` is the text the logging program wrote (attacker-influenced); the
/// `trusted` fields are what journald recorded about the sender itself
/// (`_SYSTEMD_UNIT`, `_COMM`, `_UID`, `_PID`, `_HOSTNAME`, `_EXE`) and are nil for
/// syslog files, where nothing is trusted beyond the file's own permissions.
public struct LogRecord: Sendable, Equatable {
    /// Seconds since the epoch, UTC; nil when the line carried no timestamp.
    public var time: Double?
    public var host: String?
    /// The syslog identifier (`sshd`, `postfix/smtpd`); nil for a line with no
    /// syslog header, such as a web server's access log or a JSON line.
    public var identifier: String?
    public var pid: Int?
    public var message: String
    /// Fields journald set from the sending process; nil outside the journal.
    public var trusted: TrustedFields?
    /// Where to resume so that the next record read is the one after this.
    public var position: RecordPosition
    /// The line's 1-based number in its file (refused lines counted); 0 outside files.
    public var line: Int

    public init(time: Double? = nil, host: String? = nil, identifier: String? = nil,
                pid: Int? = nil, message: String, trusted: TrustedFields? = nil,
                position: RecordPosition = .none, line: Int = 0) {
        self.time = time
        self.host = host
        self.identifier = identifier
        self.pid = pid
        self.message = message
        self.trusted = trusted
        self.position = position
        self.line = line
    }
}

/// The journal fields an unprivileged sender cannot choose.
///
/// A struct rather than a dictionary: five known fields, read for every record.
public struct TrustedFields: Sendable, Equatable {
    public var systemdUnit: String?
    public var comm: String?
    public var uid: String?
    public var pid: String?
    public var hostname: String?
    /// The sender's executable: unlike `_COMM`, an ordinary user cannot choose it.
    public var exe: String?

    public init(systemdUnit: String? = nil, comm: String? = nil, uid: String? = nil,
                pid: String? = nil, hostname: String? = nil, exe: String? = nil) {
        self.systemdUnit = systemdUnit
        self.comm = comm
        self.uid = uid
        self.pid = pid
        self.hostname = hostname
        self.exe = exe
    }

    /// The names rule files may use in conditions.
    public static let names: [String] = ["_SYSTEMD_UNIT", "_COMM", "_UID", "_PID", "_HOSTNAME", "_EXE"]

    /// The value of a field by its journal name; nil when absent or not a trusted field.
    public subscript(name: String) -> String? {
        switch name {
        case "_SYSTEMD_UNIT": return systemdUnit
        case "_COMM": return comm
        case "_UID": return uid
        case "_PID": return pid
        case "_HOSTNAME": return hostname
        case "_EXE": return exe
        default: return nil
        }
    }
}

/// An opaque-to-the-rules resume point, persisted by the caller.
public enum RecordPosition: Sendable, Equatable {
    case none
    /// A journal cursor (`sd_journal_get_cursor`).
    case journal(cursor: String)
    /// A byte position in a followed file.
    case file(FilePosition)
}

/// Where a followed file was read up to: the file's identity and the offset just
/// after the last line handed out.
///
/// The inode detects rename-and-create rotation, the offset (against the size)
/// detects truncation, and the hash of the first line detects a file that was
/// truncated and refilled past the offset, or replaced under the same inode, and
/// finds a copy or a compressed generation of it. Inside a rotated generation the
/// position names that file (its inode and first line) and the offset in its
/// uncompressed data, under the followed path.
public struct FilePosition: Sendable, Equatable, Hashable, Codable {
    public var path: String
    public var device: UInt64
    public var inode: UInt64
    public var offset: UInt64
    /// FNV-1a of the first line (without its newline); 0 until a whole first line was seen.
    public var headHash: UInt64
    /// The file's modification time (nanoseconds since the epoch) when it was
    /// read, 0 if unknown: rotated generations modified later are newer than it,
    /// which places them when the file itself is gone.
    public var modified: Int64

    public init(path: String, device: UInt64, inode: UInt64, offset: UInt64, headHash: UInt64, modified: Int64 = 0) {
        self.path = path
        self.device = device
        self.inode = inode
        self.offset = offset
        self.headHash = headHash
        self.modified = modified
    }

    /// A compact single-line text form for state files:
    /// `inode:device:offset:hash[@modified]:path`.
    public var serialized: String {
        let hash = String(headHash, radix: 16) + (modified != 0 ? "@\(modified)" : "")
        return "\(inode):\(device):\(offset):\(hash):\(path)"
    }

    public init?(serialized text: String) {
        let parts = text.split(separator: ":", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count == 5, let inode = UInt64(parts[0]), let device = UInt64(parts[1]),
              let offset = UInt64(parts[2]), !parts[4].isEmpty else { return nil }
        let hashParts = parts[3].split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        guard let hash = UInt64(hashParts[0], radix: 16) else { return nil }
        var modified: Int64 = 0
        if hashParts.count == 2 {
            guard let value = Int64(hashParts[1]) else { return nil }
            modified = value
        }
        self.init(path: String(parts[4]), device: device, inode: inode, offset: offset, headHash: hash, modified: modified)
    }
}
