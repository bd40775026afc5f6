import CoreMetrics
import Prometheus

/// The process's one Prometheus registry, and the swift-metrics factory that records
/// into it. The parts record through the Metrics API (`Counter`, `Gauge`, `Timer`)
/// with this factory; `/metrics` answers with `text()`.
///
/// swift-prometheus's own factory registers every metric without help text; this one
/// looks each name up in the help given here (each part publishes its own), so the
/// exposition keeps its `# HELP` lines. swift-prometheus stops the process when one
/// name is registered with two different help texts or types: one table per process
/// keeps the help consistent, and each test makes its own `PrometheusMetrics`.
public final class PrometheusMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: any MetricsFactory

    /// The media type of `text()`: the Prometheus text exposition format 0.0.4.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// - Parameters:
    ///   - help: each metric's help text, by name.
    ///   - timerBuckets: the histogram bucket bounds (seconds) of a timer, by name;
    ///     timers not named get swift-prometheus's defaults.
    public init(help: [String: String] = [:], timerBuckets: [String: [Double]] = [:]) {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        var factory = DescribedFactory(registry: registry, help: help)
        for (name, bounds) in timerBuckets {
            factory.timerBuckets[name] = bounds.map { Duration.nanoseconds(Int64(($0 * 1e9).rounded())) }
        }
        self.factory = factory
    }

    /// The exposition: every metric recorded so far, with its `# HELP` and `# TYPE` lines.
    public func text() -> String { registry.emitToString() }
}

/// A swift-metrics factory over one registry: counters, gauges (recorders, meters),
/// value histograms (aggregating recorders) and duration histograms (timers).
struct DescribedFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry
    let help: [String: String]
    var timerBuckets: [String: [Duration]] = [:]
    /// swift-prometheus's defaults, for a timer or recorder without buckets of its own.
    let defaultTimerBuckets: [Duration]
    let defaultValueBuckets: [Double]

    init(registry: PrometheusCollectorRegistry, help: [String: String]) {
        self.registry = registry
        self.help = help
        let defaults = PrometheusMetricsFactory(registry: registry)
        defaultTimerBuckets = defaults.defaultDurationHistogramBuckets
        defaultValueBuckets = defaults.defaultValueHistogramBuckets
    }

    private func descriptor(_ name: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help[name] ?? "")
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: descriptor(label), labels: dimensions) }
        return registry.makeValueHistogram(descriptor: descriptor(label), labels: dimensions, buckets: defaultValueBuckets)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions,
                                       buckets: timerBuckets[label] ?? defaultTimerBuckets)
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? ValueHistogram { registry.unregisterValueHistogram(histogram) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}
