import Foundation

/// A line plot as an SVG document with real text: series with 95% bands (or whiskers for
/// unconnected points), an optional horizontal reference band, and a legend placed beside the
/// plot area so it never covers data. It draws exactly what it is given; the figures decide
/// the ranges and clip the bands.
public struct SVGPlot: Sendable {
    /// One point: its position and the interval drawn around it (nil: none).
    public struct Point: Sendable, Equatable {
        public var x: Double, y: Double, low: Double?, high: Double?
        public init(x: Double, y: Double, low: Double? = nil, high: Double? = nil) {
            self.x = x
            self.y = y
            self.low = low
            self.high = high
        }
    }

    /// A named line (or, unconnected, a row of points with whiskers).
    public struct Series: Sendable {
        public var name: String, points: [Point], connected: Bool
        public init(name: String, points: [Point], connected: Bool = true) {
            self.name = name
            self.points = points
            self.connected = connected
        }
    }

    /// A horizontal band across the plot (the dense network's mean and interval).
    public struct Reference: Sendable, Equatable {
        public var name: String, mean: Double, low: Double, high: Double
    }

    /// A rectangle in SVG user units.
    public struct Box: Sendable, Equatable {
        public var x: Double, y: Double, width: Double, height: Double
        public var maxX: Double { x + width }
        public var maxY: Double { y + height }
        /// Whether the two share any area.
        public func overlaps(_ other: Box) -> Bool {
            x < other.maxX && other.x < maxX && y < other.maxY && other.y < maxY
        }
    }

    public var title: String
    public var x: PlotAxis, y: PlotAxis
    public var series: [Series]
    public var reference: Reference?

    public init(title: String, x: PlotAxis, y: PlotAxis, series: [Series], reference: Reference? = nil) {
        self.title = title
        self.x = x
        self.y = y
        self.series = series
        self.reference = reference
    }

    static let legendRow = 18.0, characterWidth = 7.4
    /// The share of the plot area's width left empty at each side, so points at the ends of
    /// the x axis do not sit on the frame.
    static let inset = 0.04

    /// The legend's entries, in order: every series, then the reference.
    var legendEntries: [String] { series.map(\.name) + (reference.map { [$0.name] } ?? []) }

    /// Where the plot area and the legend go: the legend to the right of the plot area, as wide
    /// as its longest entry, and the picture tall enough for all its entries.
    public var layout: (size: (width: Double, height: Double), plot: Box, legend: Box) {
        let legendWidth = 44 + Self.characterWidth * Double(legendEntries.map(\.count).max() ?? 0)
        let top = 34.0 + (x.ticks.contains { $0.secondary != nil } ? 36 : 0)
        let plotHeight = 300.0, plotWidth = 460.0, left = 64.0
        let legendHeight = Self.legendRow * Double(legendEntries.count) + 8
        let plot = Box(x: left, y: top, width: plotWidth, height: plotHeight)
        let legend = Box(x: plot.maxX + 16, y: top, width: legendWidth, height: legendHeight)
        let height = Swift.max(plot.maxY, legend.maxY) + 52
        return ((legend.maxX + 12, height), plot, legend)
    }

    /// The SVG document.
    public func svg() -> String {
        let (size, plot, legend) = layout
        func px(_ value: Double) -> Double { plot.x + (Self.inset + (1 - 2 * Self.inset) * x.fraction(value)) * plot.width }
        func py(_ value: Double) -> Double { plot.maxY - y.fraction(value) * plot.height }
        let n = SVGFormat.number
        var out = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(n(size.width))\" height=\"\(n(size.height))\" viewBox=\"0 0 \(n(size.width)) \(n(size.height))\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"12\">",
                   "<title>\(SVGFormat.escape(title))</title>",
                   "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
                   "<text x=\"\(n(plot.x))\" y=\"18\" font-size=\"14\" font-weight=\"bold\">\(SVGFormat.escape(title))</text>"]
        // Grid and ticks first, so data draws over them.
        for tick in x.ticks {
            let at = px(tick.value)
            out.append("<line x1=\"\(n(at))\" y1=\"\(n(plot.y))\" x2=\"\(n(at))\" y2=\"\(n(plot.maxY))\" stroke=\"#e3e3e3\"/>")
            out.append("<text x=\"\(n(at))\" y=\"\(n(plot.maxY + 16))\" text-anchor=\"middle\">\(SVGFormat.escape(tick.label))</text>")
            if let secondary = tick.secondary {
                out.append("<text x=\"\(n(at))\" y=\"\(n(plot.y - 6))\" text-anchor=\"middle\" fill=\"#444\">\(SVGFormat.escape(secondary))</text>")
            }
        }
        for tick in y.ticks {
            let at = py(tick.value)
            out.append("<line x1=\"\(n(plot.x))\" y1=\"\(n(at))\" x2=\"\(n(plot.maxX))\" y2=\"\(n(at))\" stroke=\"#e3e3e3\"/>")
            out.append("<text x=\"\(n(plot.x - 6))\" y=\"\(n(at + 4))\" text-anchor=\"end\">\(SVGFormat.escape(tick.label))</text>")
        }
        out.append("<text x=\"\(n(plot.x + plot.width / 2))\" y=\"\(n(plot.maxY + 38))\" text-anchor=\"middle\">\(SVGFormat.escape(x.title))</text>")
        if let secondary = x.secondaryTitle, x.ticks.contains(where: { $0.secondary != nil }) {
            out.append("<text x=\"\(n(plot.x + plot.width / 2))\" y=\"\(n(plot.y - 24))\" text-anchor=\"middle\" fill=\"#444\">\(SVGFormat.escape(secondary))</text>")
        }
        let middle = plot.y + plot.height / 2
        out.append("<text x=\"16\" y=\"\(n(middle))\" transform=\"rotate(-90 16 \(n(middle)))\" text-anchor=\"middle\">\(SVGFormat.escape(y.title))</text>")
        if let reference {
            out.append("<rect x=\"\(n(plot.x))\" y=\"\(n(py(reference.high)))\" width=\"\(n(plot.width))\" height=\"\(n(py(reference.low) - py(reference.high)))\" fill=\"#888\" fill-opacity=\"0.2\"/>")
            out.append("<line x1=\"\(n(plot.x))\" y1=\"\(n(py(reference.mean)))\" x2=\"\(n(plot.maxX))\" y2=\"\(n(py(reference.mean)))\" stroke=\"#555\" stroke-dasharray=\"3 3\"/>")
        }
        for (index, line) in series.enumerated() {
            let style = PlotStyle.of(index)
            let banded = line.points.filter { $0.low != nil && $0.high != nil }
            if line.connected && banded.count >= 2 {
                let upper = banded.map { SVGFormat.pair(px($0.x), py($0.high ?? $0.y)) }
                let lower = banded.reversed().map { SVGFormat.pair(px($0.x), py($0.low ?? $0.y)) }
                out.append("<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(style.colour)\" fill-opacity=\"0.15\" stroke=\"none\"/>")
            } else {
                for point in banded {
                    let at = px(point.x), low = py(point.low ?? point.y), high = py(point.high ?? point.y)
                    out.append("<path d=\"M\(SVGFormat.pair(at, low)) L\(SVGFormat.pair(at, high)) M\(SVGFormat.pair(at - 4, low)) L\(SVGFormat.pair(at + 4, low)) M\(SVGFormat.pair(at - 4, high)) L\(SVGFormat.pair(at + 4, high))\" stroke=\"\(style.colour)\" stroke-width=\"1.5\" fill=\"none\"/>")
                }
            }
            if line.connected && line.points.count >= 2 {
                let dash = style.dash.isEmpty ? "" : " stroke-dasharray=\"\(style.dash)\""
                out.append("<polyline points=\"\(line.points.map { SVGFormat.pair(px($0.x), py($0.y)) }.joined(separator: " "))\" fill=\"none\" stroke=\"\(style.colour)\" stroke-width=\"2\"\(dash)/>")
            }
            out += line.points.map { style.markerSVG(x: px($0.x), y: py($0.y)) }
        }
        out.append("<rect x=\"\(n(plot.x))\" y=\"\(n(plot.y))\" width=\"\(n(plot.width))\" height=\"\(n(plot.height))\" fill=\"none\" stroke=\"black\"/>")
        out += legendSVG(in: legend)
        out.append("</svg>")
        return out.joined(separator: "\n")
    }

    private func legendSVG(in box: Box) -> [String] {
        let n = SVGFormat.number
        var out = ["<rect x=\"\(n(box.x))\" y=\"\(n(box.y))\" width=\"\(n(box.width))\" height=\"\(n(box.height))\" fill=\"white\" stroke=\"#bbb\"/>"]
        for (index, name) in legendEntries.enumerated() {
            let y = box.y + 4 + Self.legendRow * (Double(index) + 0.5), x = box.x + 6
            if index < series.count {
                let style = PlotStyle.of(index)
                let dash = style.dash.isEmpty ? "" : " stroke-dasharray=\"\(style.dash)\""
                out.append("<line x1=\"\(n(x))\" y1=\"\(n(y))\" x2=\"\(n(x + 28))\" y2=\"\(n(y))\" stroke=\"\(style.colour)\" stroke-width=\"2\"\(dash)/>")
                out.append(style.markerSVG(x: x + 14, y: y))
            } else {
                out.append("<rect x=\"\(n(x))\" y=\"\(n(y - 6))\" width=\"28\" height=\"12\" fill=\"#888\" fill-opacity=\"0.2\"/>")
                out.append("<line x1=\"\(n(x))\" y1=\"\(n(y))\" x2=\"\(n(x + 28))\" y2=\"\(n(y))\" stroke=\"#555\" stroke-dasharray=\"3 3\"/>")
            }
            out.append("<text x=\"\(n(x + 34))\" y=\"\(n(y + 4))\">\(SVGFormat.escape(name))</text>")
        }
        return out
    }
}
