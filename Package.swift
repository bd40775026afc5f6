// swift-tools-version: 6.1
import PackageDescription

// Release builds are what users run and what the benchmarks measure; the
// numeric kernels rely on the optimiser, so keep -O even in tests' release mode.
let package = Package(
    name: "ipsight",
    // Linux only: the journal and sd_notify come from libsystemd.
    products: [
        .executable(name: "ipsight", targets: ["ipsight"]),
        .library(name: "IPInsights", targets: ["IPInsights"]),
    ],
    dependencies: [
        // The command line's subcommands, options and help: small, builds in seconds.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // The hosting contract's HTTP server (`ipsight serve`).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        // Already under Hummingbird; named for the agent's API, which runs its two
        // listeners in one service group and quietens the server's own logging.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // The agent's log: one Logger API, a journald handler of our own, and swift-log's
        // in-memory handler for the tests that check what was logged.
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // Counters, gauges and timers for /metrics through one API (already under Hummingbird),
        // collected in one Prometheus registry that renders the exposition text.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Under Hummingbird too; named for the connection guard's channel handler.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        // HMAC-SHA256 for signed webhooks: cryptography is never written by hand.
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        // The fleet's shared PostgreSQL: an async client with a connection pool, TLS
        // through NIOSSL (re-exported) and SCRAM authentication; on swift-nio, which is
        // already here, so it adds the driver and not a second network stack.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // System libraries: zlib for gzip training files, OpenBLAS for the dense
        // layers' matrix products (runtime CPU dispatch, so one portable binary),
        // libsystemd for the journal and sd_notify.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        // SQLite for the agent's state (observations, cursors, alert spool) and libcurl
        // for webhooks over HTTPS: small C libraries from Debian, kept over AsyncHTTPClient
        // and GRDB/sqlite-nio on purpose. Delivery runs on threads of its own that block
        // per alert, which libcurl's multi interface serves directly (one poll loop a
        // shutdown wakes and cancels, connections reused per sink, the system's CA
        // store), where an async client would need a bridge back to those threads; and
        // each Swift package adds 2.5 to 4.5 minutes to every clean build (CI builds
        // from a fresh clone) for a few hundred requests a second at most.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),

        // The words every stage speaks: addresses and networks, log records, login
        // events, decisions and alerts, JSON, clocks, stable hashes, file helpers.
        // No C library and no model: anything may depend on it.
        .target(name: "IPSightCore"),

        // Elementwise kernels that Swift does not vectorise (packed square roots).
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"])]),
        // The model: hyperparameters, address keys, hashing, encoder, training, scoring, model file.
        // Always optimised, so that debug builds and the test suite run the numeric
        // code at the speed users get (and training tests finish in seconds).
        .target(name: "IPInsights", dependencies: ["IPSightCore", "COpenBLAS", "CKernels"],
                swiftSettings: [.unsafeFlags(["-O"])]),
        // Data formats: CSV (plain or gzip), JSON, the SageMaker request/response codecs.
        .target(name: "IPInsightsFormats", dependencies: ["IPSightCore", "IPInsights", "CZlib"]),
        // Log records from the journal, followed files (and their gzip-compressed
        // rotated generations) and standard input.
        .target(name: "LogSources", dependencies: ["IPSightCore", "CSystemd", "CZlib"]),
        // Rule files: log records to login events. Optimised in every build, like the
        // model: the tests run every rule over millions of injected lines.
        .target(name: "Rules", dependencies: ["IPSightCore", "LogSources"],
                swiftSettings: [.unsafeFlags(["-O"])]),

        // One SQLite connection type (WAL, synchronous FULL) for the agent's state and the spool.
        .target(name: "SQLiteStore", dependencies: ["CSQLite"]),
        // The agent's log and metrics output: swift-log handlers for the journal and for
        // standard error, and the process's Prometheus registry behind swift-metrics.
        .target(name: "Observability", dependencies: [
            "CSystemd",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // Alert delivery: sinks, the durable spool, retries.
        .target(name: "AlertSinks", dependencies: ["IPSightCore", "SQLiteStore", "CCurl",
                                                   .product(name: "Crypto", package: "swift-crypto"),
                                                   .product(name: "Logging", package: "swift-log"),
                                                   .product(name: "CoreMetrics", package: "swift-metrics")]),
        // "Is this login usual?" as a library: the calibrated risk over the entities'
        // history, the decision policy, the detector. No threads of its own, no I/O.
        .target(name: "Detection", dependencies: ["IPSightCore", "IPInsights", "IPInsightsFormats"],
                swiftSettings: [.unsafeFlags(["-O"])]),
        // The agent: config, detector and decisions, observation store, retraining, lifecycle.
        .target(name: "Agent", dependencies: ["IPSightCore", "Detection", "IPInsights", "IPInsightsFormats", "LogSources", "Rules", "AlertSinks", "SQLiteStore", "CSystemd",
                                              .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                                              .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                                              .product(name: "Logging", package: "swift-log"),
                                              .product(name: "CoreMetrics", package: "swift-metrics")]),

        // Fleet mode: agents sharing logins, failures, feedback, alert delivery claims
        // and versioned models through one PostgreSQL (schema, migrations, queries,
        // the trainer lock). The agent's config only carries plain FleetSettings
        // (IPSightCore), so the agent does not depend on the database driver.
        .target(name: "Fleet", dependencies: [
            "IPSightCore",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Fleet mode in the running agent: the services that share this host's logins
        // and learn the other hosts', and that exchange the fleet's one model (the
        // agent itself stays free of the driver).
        .target(name: "FleetSync", dependencies: [
            "IPSightCore", "Agent", "AlertSinks", "Detection", "Fleet", "SQLiteStore", "IPInsights",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // `ipsight serve`: the SageMaker hosting contract over HTTP, with hot model reload.
        .target(name: "Server", dependencies: [
            "IPSightCore", "IPInsights", "IPInsightsFormats", "Observability",
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
        ]),

        // The client of the agent's API that `ipsight check` (inside a PAM login),
        // `status` and `feedback` use: blocking, one deadline, nothing but the core.
        .target(name: "AgentClient", dependencies: ["IPSightCore"]),
        // The running agent's HTTP API (decide, feedback, status, metrics) on a Unix
        // socket and TCP.
        .target(name: "AgentAPI", dependencies: [
            "IPSightCore", "Agent", "AgentClient", "Detection", "Server", "Observability", "IPInsights", "IPInsightsFormats", "Rules", "SQLiteStore",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),

        .executableTarget(name: "ipsight", dependencies: [
            "IPSightCore", "IPInsights", "IPInsightsFormats", "LogSources", "Rules", "AlertSinks", "Detection", "Agent", "Server", "AgentAPI",
            "AgentClient", "Observability", "Fleet", "FleetSync",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),

        .testTarget(name: "IPSightCoreTests", dependencies: ["IPSightCore"]),
        .testTarget(name: "IPInsightsTests", dependencies: ["IPSightCore", "IPInsights", "IPInsightsFormats"]),
        .testTarget(name: "IPInsightsFormatsTests", dependencies: ["IPSightCore", "IPInsights", "IPInsightsFormats"]),
        .testTarget(name: "DetectionTests", dependencies: ["IPSightCore", "IPInsights", "Detection", "TestSupport"]),
        .testTarget(name: "ipsightTests", dependencies: ["ipsight", "Agent", "IPSightCore", "TestSupport"]),
        .testTarget(name: "LogSourcesTests", dependencies: ["IPSightCore", "LogSources", "TestSupport"]),
        .testTarget(name: "RulesTests", dependencies: ["IPSightCore", "Rules", "LogSources", "TestSupport"]),
        .testTarget(name: "AlertSinksTests", dependencies: ["IPSightCore", "AlertSinks", "Observability", "TestSupport"]),
        .testTarget(name: "AgentTests", dependencies: ["IPSightCore", "Detection", "Agent", "AgentAPI", "AgentClient", "IPInsights", "Observability", "TestSupport"]),
        // Against a real PostgreSQL, which the tests start themselves (FleetTests/TestDatabase.swift).
        .testTarget(name: "FleetTests", dependencies: ["IPSightCore", "Fleet", "FleetSync", "Agent", "AgentAPI", "AlertSinks", "AgentClient",
                                                      "Detection", "IPInsights", "LogSources", "Observability", "Server", "TestSupport",
                                                      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                                                      .product(name: "PostgresNIO", package: "postgres-nio")]),
        .testTarget(name: "ObservabilityTests", dependencies: [
            "Observability", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
        ]),
        // One copy of what several test targets need: package paths, temporary
        // directories, synthetic users and models, waiting on a condition, and the
        // real world's parts (a journald, webhook receivers), and swift-log's in-memory
        // handler for tests that check what was logged.
        .target(name: "TestSupport", dependencies: [
            "IPSightCore", "IPInsights",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "InMemoryLogging", package: "swift-log"),
        ], path: "Tests/TestSupport"),
        .testTarget(name: "ServerTests", dependencies: [
            "IPSightCore", "Server", "IPInsights", "IPInsightsFormats", "Observability", "TestSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
    ]
)
