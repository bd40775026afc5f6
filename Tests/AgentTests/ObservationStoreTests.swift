import TestSupport
import IPSightCore
import SQLiteStore
import Testing
@testable import Agent

@Suite struct ObservationStoreTests {
    @Test func observationsAndPositionsSurviveReopening() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("state.db")
        let first = Synthetic.observations(20)
        do {
            let store = try ObservationStore(path: path)
            try store.commit(Array(first[..<12]), positions: ["file:/var/log/auth.log": "1:2:300:ab:/var/log/auth.log"])
            try store.commit(Array(first[12...]), positions: ["file:/var/log/auth.log": "1:2:600:ab:/var/log/auth.log",
                                                              "journal": "s=abc;i=1"])
        }
        let store = try ObservationStore(path: path)
        #expect(try store.count() == 20)
        #expect(try store.observations() == first)
        #expect(try store.positions() == ["file:/var/log/auth.log": "1:2:600:ab:/var/log/auth.log", "journal": "s=abc;i=1"])
        #expect(try store.observations(since: first[15].time) == Array(first[15...]))
    }

    @Test func pruneForgetsOnlyOlderLogins() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try ObservationStore(path: dir.file("state.db"))
        let all = Synthetic.observations(10)
        try store.commit(all, positions: [:])
        #expect(try store.prune(before: all[4].time) == 4)
        try store.commit([Observation(time: all[9].time + 1, user: "mallory", ip: "203.0.113.1", service: "sshd", learned: false)],
                         positions: [:])
        #expect(try store.observations(learnedOnly: true) == Array(all[4...]))
        #expect(try store.observations().last?.learned == false)
        #expect(try store.count() == 7)
    }

    @Test func onlyOwnLearntLoginsAreSharedAndPruningNeverReusesARowID() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try ObservationStore(path: dir.file("state.db"))
        let all = Synthetic.observations(4)
        try store.commit(Array(all[..<2]), positions: [:])
        // Another host's login, and one of this host's the risk alerted on.
        try store.commitShared([SharedObservation(all[2], origin: "login2")], positions: ["fleet:read": "7:3"])
        try store.commit([Observation(time: all[3].time, user: "mallory", ip: "203.0.113.1", service: "sshd", learned: false)],
                         positions: [:])
        #expect(try store.ownLearnedLogins(after: 0, limit: 10).map(\.sequence) == [1, 2])
        #expect(try store.ownLearnedLogins(after: 1, limit: 10).map(\.observation) == [all[1]])
        #expect(try store.ownLearnedCount(after: 0) == 2)
        // Learnt from the fleet: in the history the detector and the retrainer read.
        #expect(try store.observations(learnedOnly: true) == Array(all[..<3]))
        #expect(try store.positions()["fleet:read"] == "7:3")

        // Everything older than the window: the newest row stays, so the next login
        // gets a row id above every one handed out before.
        #expect(try store.prune(before: all[3].time + 1) == 3)
        try store.commit([all[0]], positions: [:])
        #expect(try store.ownLearnedLogins(after: 4, limit: 10).map(\.sequence) == [5])
    }

    @Test func aFailedBatchLeavesNeitherObservationsNorPositions() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("state.db")
        let store = try ObservationStore(path: path)
        try store.commit(Synthetic.observations(3), positions: ["journal": "one"])
        // A second connection holds the write lock, so the batch cannot commit.
        let other = try SQLiteDatabase(path: path)
        try other.execute("PRAGMA busy_timeout = 0")
        try other.execute("BEGIN IMMEDIATE")
        let blocked = try ObservationStore(path: path)
        try blocked.setBusyTimeout(milliseconds: 50)
        #expect(throws: SQLiteError.self) { try blocked.commit(Synthetic.observations(2), positions: ["journal": "two"]) }
        try other.execute("ROLLBACK")
        #expect(try store.count() == 3)
        #expect(try store.positions() == ["journal": "one"])
    }

    @Test func theModelsEntitiesAreReplacedAsAWhole() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try ObservationStore(path: dir.file("state.db"))
        #expect(try store.modelEntities().isEmpty)
        try store.replaceModelEntities([1, UInt64.max, 1 << 63])
        #expect(try store.modelEntities() == [1, UInt64.max, 1 << 63])
        try store.replaceModelEntities([7])
        #expect(try ObservationStore(path: dir.file("state.db")).modelEntities() == [7])
    }

    @Test func anOlderDatabaseGainsTheLearnedColumn() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let old = try SQLiteDatabase(path: dir.file("state.db"))
            try old.execute("""
                CREATE TABLE observations (time REAL NOT NULL, user TEXT NOT NULL, ip TEXT NOT NULL, service TEXT NOT NULL);
                INSERT INTO observations VALUES (1.0, 'alice', '10.1.0.1', 'sshd');
                """)
        }
        let store = try ObservationStore(path: dir.file("state.db"))
        #expect(try store.observations() == [Observation(time: 1, user: "alice", ip: "10.1.0.1", service: "sshd", learned: true)])
        try store.commit([Observation(time: 2, user: "alice", ip: "192.0.2.1", service: "sshd", learned: false)], positions: [:])
        #expect(try store.observations(learnedOnly: true).count == 1)
    }
}
