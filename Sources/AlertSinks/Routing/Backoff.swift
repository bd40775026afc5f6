/// Exponential backoff with jitter: a delay drawn uniformly from [c/2, c] where
/// c = min(cap, base · 2^(attempt−1)), so many agents retrying one receiver spread out
/// instead of arriving together, while a failing alert's retries still thin out
/// (full jitter, from 0, could retry at once however often it had failed).
public struct Backoff: Sendable, Equatable {
    public var base: Double
    public var cap: Double

    public init(base: Double = 1, cap: Double = 300) {
        self.base = base
        self.cap = cap
    }

    /// The ceiling for the `attempt`-th consecutive failure (1-based).
    public func ceiling(attempt: Int) -> Double {
        // Exponent clamped so that 2^n stays finite for long outages.
        min(cap, base * Double(1 << UInt64(min(max(attempt, 1) - 1, 40))))
    }

    public func delay(attempt: Int) -> Double {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &generator)
    }

    public func delay<G: RandomNumberGenerator>(attempt: Int, using generator: inout G) -> Double {
        let ceiling = ceiling(attempt: attempt)
        // A random range must be finite: a zero, infinite or NaN setting is its own delay.
        guard ceiling.isFinite, ceiling > 0 else { return ceiling.isNaN ? 0 : max(0, ceiling) }
        return Double.random(in: (ceiling / 2)...ceiling, using: &generator)
    }
}
