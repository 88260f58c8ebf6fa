/// How the n-th line of a plot is drawn. Colour alone does not tell lines apart in greyscale
/// or to every eye, so each style also has its own marker and dash pattern, and the colours
/// (Okabe and Ito's palette) are ordered so neighbours differ in lightness.
public struct PlotStyle: Sendable, Equatable {
    /// A point marker.
    public enum Marker: Sendable, CaseIterable { case circle, square, triangle, diamond, invertedTriangle, plus, cross }

    /// The stroke and fill colour, the marker and the SVG dash pattern ("" for solid).
    public var colour: String, marker: Marker, dash: String

    static let colours = ["#000000", "#E69F00", "#0072B2", "#56B4E9", "#D55E00", "#009E73", "#CC79A7"]
    static let dashes = ["", "7 4", "2 3", "9 3 2 3", "4 2", "1 2", "12 4"]

    /// The style of line `index`; seven lines differ in all three of colour, marker and dash.
    public static func of(_ index: Int) -> PlotStyle {
        PlotStyle(colour: colours[index % colours.count], marker: Marker.allCases[index % Marker.allCases.count],
                  dash: dashes[index % dashes.count])
    }

    /// The marker as an SVG element centred on (x, y).
    func markerSVG(x: Double, y: Double, size r: Double = 4) -> String {
        let fill = "fill=\"\(colour)\" stroke=\"\(colour)\""
        func path(_ points: [(Double, Double)]) -> String {
            "<path d=\"M" + points.map { SVGFormat.pair(x + $0.0, y + $0.1) }.joined(separator: " L") + " Z\" \(fill)/>"
        }
        switch marker {
        case .circle: return "<circle cx=\"\(SVGFormat.number(x))\" cy=\"\(SVGFormat.number(y))\" r=\"\(SVGFormat.number(r))\" \(fill)/>"
        case .square: return path([(-r, -r), (r, -r), (r, r), (-r, r)])
        case .triangle: return path([(0, -1.2 * r), (1.1 * r, 0.8 * r), (-1.1 * r, 0.8 * r)])
        case .invertedTriangle: return path([(0, 1.2 * r), (1.1 * r, -0.8 * r), (-1.1 * r, -0.8 * r)])
        case .diamond: return path([(0, -1.3 * r), (1.3 * r, 0), (0, 1.3 * r), (-1.3 * r, 0)])
        case .plus, .cross:
            let (a, b) = marker == .plus ? ((1.3 * r, 0.0), (0.0, 1.3 * r)) : ((r, r), (r, -r))
            return "<path d=\"M\(SVGFormat.pair(x - a.0, y - a.1)) L\(SVGFormat.pair(x + a.0, y + a.1)) M\(SVGFormat.pair(x - b.0, y - b.1)) L\(SVGFormat.pair(x + b.0, y + b.1))\" stroke=\"\(colour)\" stroke-width=\"2\" fill=\"none\"/>"
        }
    }
}

/// Numbers and text as SVG writes them: fixed precision, never NaN, markup escaped.
enum SVGFormat {
    /// A coordinate with one decimal; a value that is not finite (it never should be) becomes 0
    /// rather than an attribute no viewer can read.
    static func number(_ value: Double) -> String { String(format: "%.1f", value.isFinite ? value : 0) }
    static func pair(_ x: Double, _ y: Double) -> String { number(x) + "," + number(y) }
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
