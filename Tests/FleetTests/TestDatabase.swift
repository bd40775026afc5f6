import Fleet
import Foundation
import IPSightCore
import Logging
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A real PostgreSQL for the fleet tests.
///
/// By default the tests start their own server once per test process: `initdb` into
/// a fresh directory under /tmp (as user postgres when run as root: initdb refuses
/// root), listening on a Unix socket in that directory and on 127.0.0.1 (SCRAM
/// passwords), stopped when the process exits. `IPSIGHT_TEST_POSTGRES=DIR` uses a
/// running server's socket directory instead (superuser `postgres`, trust on the
/// socket). Without PostgreSQL the tests fail saying so; only
/// `IPSIGHT_SKIP_POSTGRES=1` skips them, for a developer who has none.
enum TestPostgres {
    static let skipped = ProcessInfo.processInfo.environment["IPSIGHT_SKIP_POSTGRES"] == "1"
    /// Whether the tests start the server (and so know its TCP side: SCRAM, TLS).
    static let ownServer = (ProcessInfo.processInfo.environment["IPSIGHT_TEST_POSTGRES"] ?? "").isEmpty
    static let superuser = "postgres"

    struct Server: Sendable {
        var socketDirectory: String
        var port: Int
        /// The server's self-signed certificate (localhost, 127.0.0.1); nil for a server
        /// the tests did not start (its TLS is not known).
        var certificate: String? = nil
        var socketPath: String { "\(socketDirectory)/.s.PGSQL.\(port)" }
    }

    static let binDirectory: String = {
        for version in ["17", "16", "15"] where FileManager.default.isExecutableFile(atPath: "/usr/lib/postgresql/\(version)/bin/initdb") {
            return "/usr/lib/postgresql/\(version)/bin"
        }
        return "/usr/lib/postgresql/15/bin"
    }()

    /// Started (or found) once; every test then makes a database of its own.
    static let server: Result<Server, SupportError> = {
        if let dir = ProcessInfo.processInfo.environment["IPSIGHT_TEST_POSTGRES"], !dir.isEmpty {
            let port = Int(ProcessInfo.processInfo.environment["IPSIGHT_TEST_POSTGRES_PORT"] ?? "") ?? 5432
            return prepare(Server(socketDirectory: dir, port: port))
        }
        return start().flatMap(prepare)
    }()

    static func require() throws -> Server { try server.get() }

    private static func start() -> Result<Server, SupportError> {
        launch().map { instance in
            stopCommand = instance.stop
            removeDirectory = instance.directory
            atexit {
                _ = try? TestPostgres.run(TestPostgres.stopCommand)
                _ = try? TestPostgres.run(["rm", "-rf", TestPostgres.removeDirectory])
            }
            return instance.server
        }
    }

    /// A server started for the tests: how to stop it and start it again.
    struct Instance: Sendable {
        var server: Server
        var directory: String
        var start: [String]
        var stop: [String]
    }

    /// Runs `body` with a server of the test's own (one the test may stop and start:
    /// `instance.stop`, `instance.start`) and a migrated fleet database on it; the
    /// server is stopped and removed afterwards.
    static func withOwnServer<T>(_ body: (TestFleet, Instance) async throws -> T) async throws -> T {
        let instance = try launch().get()
        defer {
            _ = try? run(instance.stop)
            _ = try? run(["rm", "-rf", instance.directory])
        }
        _ = try prepare(instance.server).get()
        let fleet = try TestFleet(on: instance.server)
        try await fleet.withStore { _ = try await $0.migrate() }
        return try await body(fleet, instance)
    }

    /// Initialises and starts a server in a fresh directory under /tmp.
    static func launch() -> Result<Instance, SupportError> {
        guard FileManager.default.isExecutableFile(atPath: binDirectory + "/initdb") else {
            return .failure(SupportError("PostgreSQL's server is not installed (\(binDirectory)/initdb): apt-get install postgresql (deploy/setup test does), or set IPSIGHT_SKIP_POSTGRES=1 to skip the fleet tests"))
        }
        let dir = TemporaryDirectory().path
        // initdb refuses root: the directory becomes postgres's, the commands run as postgres.
        var asUser: [String] = []
        if getuid() == 0 {
            guard let pw = getpwnam("postgres") else { return .failure(SupportError("running as root and there is no user postgres")) }
            chown(dir, pw.pointee.pw_uid, pw.pointee.pw_gid)
            asUser = ["runuser", "-u", "postgres", "--"]
        }
        let port = freePort()
        let options = "-c listen_addresses=127.0.0.1 -c port=\(port) -c unix_socket_directories=\(dir) -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            + " -c ssl=on -c ssl_cert_file=\(dir)/server.crt -c ssl_key_file=\(dir)/server.key"
        let start = asUser + [binDirectory + "/pg_ctl", "-D", dir + "/data", "-l", dir + "/server.log", "-o", options, "-w", "-t", "60", "start"]
        do {
            try run(asUser + [binDirectory + "/initdb", "-D", dir + "/data", "-U", superuser, "--auth-local=trust",
                              "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C"])
            // TLS on TCP, with a certificate of its own for the tls tests.
            try run(asUser + ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                              "-keyout", dir + "/server.key", "-out", dir + "/server.crt", "-days", "2", "-subj", "/CN=localhost",
                              "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            try run(start)
        } catch {
            return .failure(SupportError("cannot start PostgreSQL in \(dir): \(error)"))
        }
        return .success(Instance(server: Server(socketDirectory: dir, port: port, certificate: dir + "/server.crt"),
                                 directory: dir, start: start,
                                 stop: asUser + [binDirectory + "/pg_ctl", "-D", dir + "/data", "-m", "immediate", "stop"]))
    }

    nonisolated(unsafe) static var stopCommand: [String] = []
    nonisolated(unsafe) static var removeDirectory = ""

    /// The roles of deploy/fleet/roles.sql, and login roles for the tests: created once,
    /// before any test runs it per database (CREATE ROLE does not race well).
    static func prepare(_ server: Server) -> Result<Server, SupportError> {
        do {
            if !ownServer {
                // A server that outlives the tests: the databases of earlier runs go first.
                let drop = "/tmp/ipsight-pg-drop-\(getpid()).sql"
                defer { unlink(drop) }
                let sql = "SELECT format('DROP DATABASE %I', datname) FROM pg_database WHERE datname LIKE 'ipsight\\_test\\_%' \\gexec\n"
                guard let f = fopen(drop, "w") else { throw SupportError("cannot write \(drop)") }
                fputs(sql, f)
                fclose(f)
                try psql(server, database: "postgres", file: drop)
            }
            try psql(server, database: "postgres", file: PackagePaths.root + "/deploy/fleet/roles.sql", variables: ["db": "ipsight_test_template"])
            try psql(server, database: "postgres", command: """
                DO $$ BEGIN
                    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ipsight_test_agent1') THEN
                        CREATE ROLE ipsight_test_agent1 LOGIN IN ROLE ipsight_agent;
                        CREATE ROLE ipsight_test_agent2 LOGIN IN ROLE ipsight_agent;
                        CREATE ROLE ipsight_test_trainer LOGIN IN ROLE ipsight_trainer;
                        CREATE ROLE ipsight_test_password LOGIN IN ROLE ipsight_agent PASSWORD 'correct horse';
                    END IF;
                END $$
                """)
            return .success(server)
        } catch {
            return .failure(SupportError("cannot prepare PostgreSQL on \(server.socketPath): \(error)"))
        }
    }

    /// A fresh database set up as deploy/fleet/roles.sql says, for one test.
    static func makeDatabase(on given: Server? = nil) throws -> (Server, String) {
        let server = try given ?? require()
        let name = "ipsight_test_\(UInt64.random(in: 0...UInt64.max) & 0xFFFF_FFFF_FFFF)"
        try psql(server, database: "postgres", file: PackagePaths.root + "/deploy/fleet/roles.sql", variables: ["db": name])
        return (server, name)
    }

    @discardableResult
    static func psql(_ server: Server, database: String, command: String? = nil, file: String? = nil,
                     variables: [String: String] = [:], user: String = superuser) throws -> String {
        var arguments = [binDirectory + "/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", server.socketDirectory,
                         "-p", String(server.port), "-U", user, "-d", database]
        for (key, value) in variables.sorted(by: { $0.key < $1.key }) { arguments += ["-v", "\(key)=\(value)"] }
        if let command { arguments += ["-c", command] }
        if let file { arguments += ["-f", file] }
        return try run(arguments)
    }

    /// Runs a command to its end, its output through temporary files; fails with its
    /// standard error on a non-zero exit. posix_spawn and waitpid rather than
    /// Foundation's Process, which on Linux can miss the exit of a command that leaves
    /// a daemon behind (pg_ctl start), and would wait forever.
    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        let base = "/tmp/ipsight-pg-run-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(base + ".out"); unlink(base + ".err") }
        let pid = try spawn(arguments, stdout: base + ".out", stderr: base + ".err")
        let status = wait(pid)
        let output = readTextFile(base + ".out") ?? ""
        guard status == 0 else {
            throw SupportError("\(arguments.joined(separator: " ")) failed (status \(status)): \(readTextFile(base + ".err") ?? "")")
        }
        return output.trimmingBlanks()
    }

    /// Starts a command; standard input from `stdin` (a descriptor) or /dev/null.
    static func spawn(_ arguments: [String], stdin: Int32? = nil, stdout: String = "/dev/null", stderr: String = "/dev/null") throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin { posix_spawn_file_actions_adddup2(&actions, stdin, 0) } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let error = posix_spawnp(&pid, arguments[0], &actions, nil, argv, environ)
        guard error == 0 else { throw SupportError("cannot run \(arguments[0]): \(String(cString: strerror(error)))") }
        return pid
    }

    /// The exit status of `pid` (128 + signal when killed).
    static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}

/// One test's database and the stores that reach it as different roles.
struct TestFleet {
    let server: TestPostgres.Server
    let database: String

    init(on given: TestPostgres.Server? = nil) throws {
        (server, database) = try TestPostgres.makeDatabase(on: given)
    }

    func settings(user: String = "ipsight_owner", host: String = "host-a", trainer: Bool = true) -> FleetSettings {
        FleetSettings(user: user, database: database, endpoint: .unixSocket(path: server.socketPath),
                      trainer: trainer, hostName: host)
    }

    /// Runs `body` with a store connected as `user`, naming itself `host`.
    @discardableResult
    func withStore<T: Sendable>(user: String = "ipsight_owner", host: String = "host-a", trainer: Bool = true,
                                _ body: @Sendable (FleetStore) async throws -> T) async throws -> T {
        var logger = Logger(label: "fleet-test")
        logger.logLevel = .warning
        return try await FleetStore.withStore(try FleetConfig(settings: settings(user: user, host: host, trainer: trainer)),
                                              logger: logger, body)
    }

    /// A backup of the database as it is now (pg_dump's custom format).
    func backup(to file: String) throws {
        try TestPostgres.run([TestPostgres.binDirectory + "/pg_dump", "-h", server.socketDirectory, "-p", String(server.port),
                              "-U", TestPostgres.superuser, "-Fc", "-f", file, database])
    }

    /// The database replaced by `backup(to:)`'s copy, as an operator restores one:
    /// dropped (its connections cut), created again as the one-time setup does, the
    /// backup loaded.
    func restore(from file: String) throws {
        try TestPostgres.psql(server, database: "postgres", command: "DROP DATABASE \(database) WITH (FORCE)")
        try TestPostgres.psql(server, database: "postgres", file: PackagePaths.root + "/deploy/fleet/roles.sql",
                              variables: ["db": database])
        try TestPostgres.run([TestPostgres.binDirectory + "/pg_restore", "-h", server.socketDirectory, "-p", String(server.port),
                              "-U", TestPostgres.superuser, "--exit-on-error", "-d", database, file])
    }

    /// A statement as the superuser (to corrupt a row, to look behind the API); its output, unaligned.
    @discardableResult
    func superuser(_ sql: String) throws -> String {
        try TestPostgres.psql(server, database: database, command: sql)
    }
}
