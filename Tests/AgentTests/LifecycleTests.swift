import Foundation
import Testing
@testable import Agent

@Suite struct LifecycleTests {
    func config(_ dir: TemporaryDirectory, follow: Bool) -> String {
        """
        [agent]
        state_dir = \(dir.path)
        rules = \(Paths.rules)
        [sources]
        journal = false
        files = \(dir.file("auth.log"))
        follow = \(follow)
        utc = true
        [cold_start]
        min_logins = 5
        [retrain]
        retention = 3650d
        """
    }

    @Test func aBadConfigIsRefusedOnReloadAndTheOldOneStays() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write("auth.log", "")
        dir.write("agent.conf", config(dir, follow: false))
        let path = dir.file("agent.conf")
        let agent = try AgentRuntime(config: try AgentConfig.load(path: path), configPath: path,
                                     router: CollectingRouter(), log: AgentLog(minimum: .error))
        dir.write("agent.conf", config(dir, follow: false) + "\n[cold_start]\npolicy = panic\n")
        agent.reload()
        #expect(agent.config.coldStartMinLogins == 5)
        dir.write("agent.conf", config(dir, follow: false).replacingOccurrences(of: "min_logins = 5", with: "min_logins = 9"))
        agent.reload()
        #expect(agent.config.coldStartMinLogins == 9)
    }

    @Test func stopEndsAFollowingAgentAndKeepsWhatItRead() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write("auth.log", Synthetic.sshdLine(minute: 0, user: "alice", ip: "10.1.0.1")
            + Synthetic.sshdLine(minute: 1, user: "bob", ip: "10.2.0.1"))
        dir.write("agent.conf", config(dir, follow: true))
        let agent = try AgentRuntime(config: try AgentConfig.load(path: dir.file("agent.conf")), configPath: nil,
                                     router: CollectingRouter(), log: AgentLog(minimum: .error))
        let finished = NSCondition()
        nonisolated(unsafe) var done = false
        nonisolated(unsafe) var failure: Error?
        let thread = Thread {
            do { try agent.run(retrain: false) } catch { failure = error }
            finished.lock(); done = true; finished.broadcast(); finished.unlock()
        }
        thread.start()
        // Wait (bounded) until both lines are stored, then stop as SIGTERM would.
        // A connection of the test's own: the agent's belongs to its pipeline thread.
        let reader = try ObservationStore(path: dir.file("ipsight.db"))
        let deadline = Date(timeIntervalSinceNow: 10)
        while (try? reader.count()) != 2 && Date() < deadline { usleep(20_000) }
        #expect(try reader.count() == 2)
        let stopped = Date()
        agent.stop()
        finished.lock()
        while !done { if !finished.wait(until: Date(timeIntervalSinceNow: 10)) { break } }
        finished.unlock()
        #expect(done, "run returns after stop")
        #expect(Date().timeIntervalSince(stopped) < 5)
        #expect(failure == nil)
        #expect(try reader.positions()["file:" + dir.file("auth.log")] != nil)
    }

    @Test func aSourceThatFailsEndsTheRunWithAnError() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write("agent.conf", config(dir, follow: false))
        let agent = try AgentRuntime(config: try AgentConfig.load(path: dir.file("agent.conf")), configPath: nil,
                                     router: CollectingRouter(), log: AgentLog(minimum: .error))
        #expect(throws: AgentFailure.self) { try agent.run(retrain: false) }
    }
}
