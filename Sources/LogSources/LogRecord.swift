/// One line of log text and where it came from, as a source hands it to the rules.
///
/// `message` is the text the logging program wrote (attacker-influenced); the
/// `trusted` fields are what journald recorded about the sender itself
/// (`_SYSTEMD_UNIT`, `_COMM`, `_UID`, `_PID`, `_HOSTNAME`) and are empty for
/// syslog files, where nothing is trusted beyond the file's own permissions.
public struct LogRecord: Sendable, Equatable {
    public var time: Double?
    public var host: String?
    public var identifier: String?
    public var pid: Int?
    public var message: String
    public var trusted: [String: String]

    public init(time: Double? = nil, host: String? = nil, identifier: String? = nil,
                pid: Int? = nil, message: String, trusted: [String: String] = [:]) {
        self.time = time
        self.host = host
        self.identifier = identifier
        self.pid = pid
        self.message = message
        self.trusted = trusted
    }
}
