import IPSightCore

/// Where the addresses of random negatives come from.
public enum RandomNegatives: Sendable, Equatable {
    /// Any address of the positive's family, uniformly: the specification's random negatives.
    case uniform
    /// A routed network of the positive's family chosen uniformly from a table, then
    /// an address inside it (uniform for a family the table lacks). The scores then
    /// compare an entity's logins with the internet's networks rather than with the
    /// whole address space, much of which never logs in anywhere.
    case routed(RoutedNetworks)

    /// The routed table, if the negatives come from one.
    public var table: RoutedNetworks? {
        if case .routed(let table) = self { return table }
        return nil
    }
}
