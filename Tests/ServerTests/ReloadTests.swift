import IPSightCore
import Foundation
import Hummingbird
import HummingbirdTesting
import IPInsights
import IPInsightsFormats
import Observability
import Testing
import TestSupport
@testable import Server

/// A new model file is picked up while serving; a corrupt one is refused.
@Suite(.serialized) struct ReloadTests {
    static let body = "entity_id_1, 192.168.1.2\n"

    static func score(_ client: any TestClientProtocol) async throws -> Double? {
        let response = try await Support.post(client, body, contentType: "text/csv", accept: "application/jsonlines")
        guard response.status == .ok else { return nil }
        return try Support.jsonLines(response.body).first?["dot_product"]?.numberValue
    }

    static func expected(_ model: Model) -> Double {
        Double(model.score(entity: "entity_id_1", ip: IPAddress("192.168.1.2")!))
    }

    static func near(_ a: Double?, _ b: Double) -> Bool {
        guard let a else { return false }
        return abs(a - b) <= 1e-4 * max(1, abs(b))
    }

    @Test func changedFileIsServedAndGarbageIsRefused() async throws {
        let (path, first) = try Support.savedModel(seed: 20)
        defer { unlink(path) }
        let second = try Support.model(seed: 21)
        #expect(!Self.near(Self.expected(first), Self.expected(second)))
        try await Support.withServer(modelPath: path) { client, store, metrics in
            let watcher = ModelWatcher(store: store)
            watcher.start(pollInterval: 0.05, sighup: false)
            defer { watcher.stop() }
            let before = try await Self.score(client)
            #expect(Self.near(before, Self.expected(first)))

            try ModelFile.save(second, to: path)
            let switched = try await Support.eventually { Self.near(try await Self.score(client), Self.expected(second)) }
            #expect(switched)
            #expect(store.reloads.succeeded == 1)

            // Garbage written in place: refused, the second model keeps answering.
            try Data("not a model".utf8).write(to: URL(fileURLWithPath: path))
            let refused = await Support.eventually { store.reloads.refused >= 1 }
            #expect(refused)
            // Counted for /metrics too.
            let text = metrics.text()
            #expect(Exposition.value(#"ipsight_model_reloads_total{result="loaded"}"#, in: text) == 1, "\(text)")
            #expect((Exposition.value(#"ipsight_model_reloads_total{result="refused"}"#, in: text) ?? 0) >= 1, "\(text)")
            let afterGarbage = try await Self.score(client)
            #expect(Self.near(afterGarbage, Self.expected(second)))
            let ping = try await client.execute(uri: "/ping", method: .get)
            #expect(ping.status == .ok)

            // A good file after the bad one is picked up again.
            try ModelFile.save(first, to: path)
            let back = try await Support.eventually { Self.near(try await Self.score(client), Self.expected(first)) }
            #expect(back)
        }
    }

    @Test func requestsDuringReloadsAllSucceed() async throws {
        let (path, first) = try Support.savedModel(seed: 22)
        defer { unlink(path) }
        let second = try Support.model(seed: 23)
        let allowed = [Self.expected(first), Self.expected(second)]
        try await Support.withServer(modelPath: path) { client, store, _ in
            for k in 0..<20 {
                let reloader = Task.detached {
                    try ModelFile.save(k % 2 == 0 ? second : first, to: path)
                    store.reload(reason: "test")
                }
                let score = try await Self.score(client)
                #expect(allowed.contains { Self.near(score, $0) })
                try await reloader.value
            }
            #expect(store.reloads.succeeded == 20)
        }
    }

    @Test func sighupReloads() async throws {
        let (path, first) = try Support.savedModel(seed: 24)
        defer { unlink(path) }
        let second = try Support.model(seed: 25)
        try await Support.withServer(modelPath: path) { client, store, _ in
            let watcher = ModelWatcher(store: store)
            // Polling too slow to notice: only the signal can switch the model.
            watcher.start(pollInterval: 3600, sighup: true)
            defer { watcher.stop() }
            try ModelFile.save(second, to: path)
            let beforeSignal = try await Self.score(client)
            #expect(Self.near(beforeSignal, Self.expected(first)))
            kill(getpid(), SIGHUP)
            let switched = try await Support.eventually { Self.near(try await Self.score(client), Self.expected(second)) }
            #expect(switched)
        }
    }

    @Test func corruptFileAtStartIsRefused() throws {
        let path = Support.temporaryPath("garbage.ipsight")
        defer { unlink(path) }
        try Data("IPSIGHTM garbage".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: ModelFileError.self) { try ModelStore(path: path, log: { _ in }) }
    }
}
