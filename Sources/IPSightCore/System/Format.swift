/// Numbers and durations as text, without Foundation (reasons, status).
public enum Format {
    /// `93784` → `1d 2h 3m`: at most two units below the largest, for elapsed times.
    public static func elapsed(_ seconds: Double) -> String {
        // Clamped to a thousand years: text for any Double, never a trap on conversion.
        var s = Int(min(max(0, seconds.isNaN ? 0 : seconds), 3.2e10))
        var parts: [String] = []
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] where s >= size {
            parts.append("\(s / size)\(unit)")
            s %= size
        }
        if parts.isEmpty || (s > 0 && parts.count < 2) { parts.append("\(s)s") }
        return parts.joined(separator: " ")
    }

    /// `3600` → `1h`, `90` → `90s`: the largest unit that divides the value.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, abs(seconds) < 3.2e10 else { return seconds.isNaN ? "nan" : "forever" }
        for (unit, size) in [("d", 86_400.0), ("h", 3600.0), ("m", 60.0)] where seconds >= size && seconds.truncatingRemainder(dividingBy: size) == 0 {
            return "\(Int(seconds / size))\(unit)"
        }
        return "\(Int(seconds))s"
    }

    /// `value` with `digits` decimals, without Foundation.
    public static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let rounded = (abs(value) * scale).rounded()
        guard rounded < 9e15 else { return "\(value)" }
        let whole = Int(rounded / scale)
        var fraction = String(Int(rounded - Double(whole) * scale))
        while fraction.count < digits { fraction = "0" + fraction }
        let sign = value < 0 && rounded != 0 ? "-" : ""
        return digits == 0 ? "\(sign)\(whole)" : "\(sign)\(whole).\(fraction)"
    }
}
