/// A plain-text table with aligned columns, for terminal output.
struct TextTable {
    let columns: [String]
    let rightAligned: Set<Int>
    private var rows: [[String]?] = []   // nil = separator line

    init(columns: [String], rightAligned: Set<Int> = []) {
        self.columns = columns
        self.rightAligned = rightAligned
    }

    mutating func add(_ row: [String]) { rows.append(row) }
    mutating func addSeparator() { rows.append(nil) }

    func render() -> String {
        var widths = columns.map(\.count)
        for row in rows.compactMap({ $0 }) {
            for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return rightAligned.contains(i) ? pad + cell : cell + pad
            }.joined(separator: "  ")
        }
        let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        return ([line(columns), rule] + rows.map { $0.map(line) ?? rule }).joined(separator: "\n")
    }
}

/// 1234567 → "1,234,567".
func grouped(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return n < 0 ? "-" + out : out
}
