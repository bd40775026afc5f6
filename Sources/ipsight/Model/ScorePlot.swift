/// A hand-written SVG of score distributions: one panel per score, the normal
/// logins' histogram (and the attacks', when known) on a log scale, so that the
/// tails where the thresholds sit stay visible, with each threshold marked.
struct ScorePlot {
    struct Threshold {
        var label: String
        var value: Double
    }

    struct Panel {
        var title: String
        var axisLabel: String
        var normal: [Double]
        var attacks: [Double]?
        var thresholds: [Threshold]
    }

    var title: String
    var panels: [Panel]
    var bins = 60

    static let width = 900.0
    static let panelHeight = 330.0
    static let margin = (left: 80.0, right: 30.0, top: 78.0, bottom: 62.0)
    static let colours = (normal: "#2b6cb0", attacks: "#c53030", threshold: "#2f855a")

    func svg() -> String {
        let height = 50 + Double(panels.count) * ScorePlot.panelHeight
        var out = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(f(ScorePlot.width))" height="\(f(height))" \
        viewBox="0 0 \(f(ScorePlot.width)) \(f(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(ScorePlot.width / 2))" y="28" text-anchor="middle" font-size="17" font-weight="bold">\(escape(title))</text>

        """
        for (k, panel) in panels.enumerated() {
            out += self.panel(panel, top: 40 + Double(k) * ScorePlot.panelHeight)
        }
        out += "</svg>\n"
        return out
    }

    /// One histogram panel whose frame starts `top` pixels down.
    func panel(_ p: Panel, top: Double) -> String {
        let m = ScorePlot.margin
        let x0 = m.left, x1 = ScorePlot.width - m.right
        let y0 = top + m.top, y1 = top + ScorePlot.panelHeight - m.bottom
        let values = p.normal + (p.attacks ?? []) + p.thresholds.map(\.value)
        guard var lo = values.min(), var hi = values.max() else { return "" }
        if hi - lo < 1e-9 { lo -= 1; hi += 1 }
        let pad = (hi - lo) * 0.02
        lo -= pad
        hi += pad
        let step = ScorePlot.niceStep((hi - lo) / 8)
        func px(_ v: Double) -> Double { x0 + (v - lo) / (hi - lo) * (x1 - x0) }

        // Shares per bin, each class on its own total.
        func shares(_ data: [Double]) -> [Double] {
            var counts = [Double](repeating: 0, count: bins)
            for v in data { counts[min(bins - 1, max(0, Int((v - lo) / (hi - lo) * Double(bins))))] += 1 }
            return counts.map { $0 / Double(max(data.count, 1)) }
        }
        let series = [(p.normal, ScorePlot.colours.normal, "normal logins (\(p.normal.count))")]
            + (p.attacks.map { [($0, ScorePlot.colours.attacks, "attacks (\($0.count))")] } ?? [])
        let histograms = series.map { (shares($0.0), $0.1, $0.2) }
        // Log scale down to the smallest share one login makes, in whole decades.
        let smallest = histograms.flatMap { $0.0 }.filter { $0 > 0 }.min() ?? 1e-3
        let floorDecade = min(-1, Int((log10(smallest)).rounded(.down)))
        func py(_ share: Double) -> Double {
            let d = share > 0 ? max(log10(share), Double(floorDecade)) : Double(floorDecade)
            return y1 - (d - Double(floorDecade)) / Double(-floorDecade) * (y1 - y0)
        }

        var s = "<g>\n"
        s += "<text x=\"\(f(x0))\" y=\"\(f(top + 18))\" font-size=\"14\" font-weight=\"bold\">\(escape(p.title))</text>\n"
        // Grid and y axis: one line per decade.
        for d in floorDecade...0 {
            let y = py(pow10(d))
            s += "<line x1=\"\(f(x0))\" y1=\"\(f(y))\" x2=\"\(f(x1))\" y2=\"\(f(y))\" stroke=\"#e2e8f0\"/>\n"
            s += "<text x=\"\(f(x0 - 8))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(decadeLabel(d))</text>\n"
        }
        // x axis ticks.
        var tick = (lo / step).rounded(.up) * step
        while tick <= hi {
            let x = px(tick)
            s += "<line x1=\"\(f(x))\" y1=\"\(f(y1))\" x2=\"\(f(x))\" y2=\"\(f(y1 + 5))\" stroke=\"#333\"/>\n"
            s += "<text x=\"\(f(x))\" y=\"\(f(y1 + 19))\" text-anchor=\"middle\">\(tickLabel(tick, step))</text>\n"
            tick += step
        }
        s += "<text x=\"\(f((x0 + x1) / 2))\" y=\"\(f(y1 + 42))\" text-anchor=\"middle\" font-size=\"13\">\(escape(p.axisLabel))</text>\n"
        s += "<text transform=\"translate(\(f(x0 - 58)),\(f((y0 + y1) / 2))) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">share of logins per bin (log scale)</text>\n"
        // Histograms as filled steps.
        let binWidth = (x1 - x0) / Double(bins)
        for (h, colour, _) in histograms {
            var path = "M\(f(x0)),\(f(y1))"
            for (b, share) in h.enumerated() {
                let y = share > 0 ? py(share) : y1
                path += " L\(f(x0 + Double(b) * binWidth)),\(f(y)) L\(f(x0 + Double(b + 1) * binWidth)),\(f(y))"
            }
            path += " L\(f(x1)),\(f(y1)) Z"
            s += "<path d=\"\(path)\" fill=\"\(colour)\" fill-opacity=\"0.25\" stroke=\"\(colour)\" stroke-width=\"1.5\"/>\n"
        }
        // Thresholds: dashed lines, labels stacked above the frame.
        for (k, t) in p.thresholds.sorted(by: { $0.value < $1.value }).enumerated() {
            let x = px(t.value)
            s += "<line class=\"threshold\" x1=\"\(f(x))\" y1=\"\(f(y0 - 4 - Double(k % 3) * 14))\" x2=\"\(f(x))\" y2=\"\(f(y1))\" stroke=\"\(ScorePlot.colours.threshold)\" stroke-width=\"1.5\" stroke-dasharray=\"6,4\"/>\n"
            let anchor = x > (x0 + x1) / 2 ? "end" : "start"
            let dx = anchor == "end" ? -4.0 : 4.0
            s += "<text class=\"threshold\" x=\"\(f(x + dx))\" y=\"\(f(y0 - 8 - Double(k % 3) * 14))\" text-anchor=\"\(anchor)\" fill=\"\(ScorePlot.colours.threshold)\">\(escape(t.label))</text>\n"
        }
        // Frame and legend.
        s += "<rect x=\"\(f(x0))\" y=\"\(f(y0))\" width=\"\(f(x1 - x0))\" height=\"\(f(y1 - y0))\" fill=\"none\" stroke=\"#333\"/>\n"
        var lx = x1 - 10
        for (_, colour, name) in histograms.reversed() {
            let w = Double(name.count) * 7 + 22
            lx -= w
            s += "<rect x=\"\(f(lx))\" y=\"\(f(top + 8))\" width=\"12\" height=\"12\" fill=\"\(colour)\" fill-opacity=\"0.5\" stroke=\"\(colour)\"/>\n"
            s += "<text x=\"\(f(lx + 17))\" y=\"\(f(top + 18))\">\(escape(name))</text>\n"
        }
        s += "</g>\n"
        return s
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        var p = 1.0
        while p * 10 <= raw { p *= 10 }
        while p > raw { p /= 10 }
        for m in [1.0, 2, 5, 10] where p * m >= raw { return p * m }
        return p * 10
    }

    func pow10(_ d: Int) -> Double {
        var v = 1.0
        for _ in 0..<abs(d) { v *= 10 }
        return d < 0 ? 1 / v : v
    }

    func decadeLabel(_ d: Int) -> String {
        switch d {
        case 0: return "1"
        case -1: return "0.1"
        case -2: return "0.01"
        default: return "1e\(d)"
        }
    }

    func tickLabel(_ v: Double, _ step: Double) -> String {
        let places = step >= 1 ? 0 : step >= 0.1 ? 1 : step >= 0.01 ? 2 : 3
        let value = abs(v) < step / 1000 ? 0 : v
        let text = places == 0 ? String(Int(value.rounded())) : Console.fixed(value, places)
        return text.hasPrefix("-") ? "−" + text.dropFirst() : text
    }

    /// A coordinate with two decimals at most.
    func f(_ v: Double) -> String {
        let r = (v * 100).rounded() / 100
        return r == r.rounded() ? String(Int(r)) : "\(r)"
    }

    func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}

#if canImport(Glibc)
import Glibc
#endif
