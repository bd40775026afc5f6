import Agent
import Fleet
import ServiceLifecycle

/// The fleet store's connection pool as one of the agent's services: it runs
/// until shutdown, after the services that query it have stopped (it is listed
/// before them, and a group stops in reverse order).
public struct FleetClientService: Service {
    let store: FleetStore

    public init(store: FleetStore) { self.store = store }

    public func run() async {
        let store = self.store
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await store.run() }
            await waitForShutdown()
            group.cancelAll()
        }
    }
}
