/// Reads samples out of a Prometheus text exposition.
public enum Exposition {
    /// The value of one series, written as in the exposition: a name, or a name and its
    /// labels in their order (`ipsight_decisions_total{origin="api",decision="alert"}`).
    public static func value(_ series: String, in text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    /// The `# TYPE` of a metric family, if the exposition has it.
    public static func type(of name: String, in text: String) -> String? {
        for line in text.split(separator: "\n") where line.hasPrefix("# TYPE \(name) ") {
            return String(line.dropFirst("# TYPE \(name) ".count))
        }
        return nil
    }
}
