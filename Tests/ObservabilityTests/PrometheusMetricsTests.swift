import CoreMetrics
import Testing
import TestSupport
@testable import Observability

/// The registry behind the Metrics API: help and types in the exposition, a timer's
/// own buckets, one series shared by the parts that name it. Each test has its own
/// registry: one name registered twice differently stops the process.
@Suite struct PrometheusMetricsTests {
    @Test func theExpositionHasHelpTypesAndValues() {
        let metrics = PrometheusMetrics(help: ["t_events_total": "Events seen.", "t_wait_seconds": "Waits."],
                                        timerBuckets: ["t_wait_seconds": [0.01, 1]])
        let events = Counter(label: "t_events_total", dimensions: [("kind", "a")], factory: metrics.factory)
        events.increment(by: 3)
        // Another part naming the same series counts into it.
        Counter(label: "t_events_total", dimensions: [("kind", "a")], factory: metrics.factory).increment()
        Gauge(label: "t_depth", factory: metrics.factory).record(7)
        let wait = CoreMetrics.Timer(label: "t_wait_seconds", factory: metrics.factory)
        wait.recordSeconds(0.005)
        wait.recordSeconds(0.5)
        wait.recordSeconds(5)
        let text = metrics.text()
        #expect(text.contains("# HELP t_events_total Events seen.\n# TYPE t_events_total counter\n"), "\(text)")
        #expect(Exposition.value(#"t_events_total{kind="a"}"#, in: text) == 4)
        #expect(!text.contains("# HELP t_depth"), "no help given, no help line")
        #expect(Exposition.type(of: "t_depth", in: text) == "gauge")
        #expect(Exposition.value("t_depth", in: text) == 7)
        #expect(Exposition.type(of: "t_wait_seconds", in: text) == "histogram")
        #expect(Exposition.value(#"t_wait_seconds_bucket{le="0.01"}"#, in: text) == 1)
        #expect(Exposition.value(#"t_wait_seconds_bucket{le="1.0"}"#, in: text) == 2)
        #expect(Exposition.value(#"t_wait_seconds_bucket{le="+Inf"}"#, in: text) == 3)
        #expect(Exposition.value("t_wait_seconds_count", in: text) == 3)
    }

    @Test func aDestroyedMetricLeavesTheExposition() {
        let metrics = PrometheusMetrics()
        let gauge = Gauge(label: "t_model_age_seconds", factory: metrics.factory)
        gauge.record(1)
        #expect(Exposition.value("t_model_age_seconds", in: metrics.text()) == 1)
        gauge.destroy()
        #expect(!metrics.text().contains("t_model_age_seconds"))
    }

    @Test func registriesAreApart() {
        let one = PrometheusMetrics(help: ["t_x_total": "One."]), two = PrometheusMetrics(help: ["t_x_total": "Two."])
        Counter(label: "t_x_total", factory: one.factory).increment()
        #expect(Exposition.value("t_x_total", in: one.text()) == 1)
        #expect(Exposition.value("t_x_total", in: two.text()) == nil)
    }
}
