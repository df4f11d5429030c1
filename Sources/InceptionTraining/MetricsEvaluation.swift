import Foundation
import Inception

/// Accuracy of a classifier on labelled images, accumulated batch by batch from logits:
/// top-1, top-5, mean softmax cross-entropy, per-class accuracy and the confusion matrix.
///
/// - top-1 and the confusion matrix use the arg-max (the first on ties);
/// - top-k is `tf.nn.in_top_k`: the label counts when fewer than k logits are strictly greater than
///   the label's (so ties at the boundary count), with k = min(5, classes);
/// - a row holding a NaN counts as wrong for every measure.
///
///     var report = EvaluationReport(classNames: data.classNames)
///     for batch in … { report.add(logits: model(batch.images), labels: batch.labels) }
///     print(report.summary)
public struct EvaluationReport: Sendable, Equatable {
    public struct ClassResult: Sendable, Equatable {
        public let name: String
        /// Images of this class.
        public let count: Int
        /// Of those, predicted correctly (top-1).
        public let correct: Int
        /// Of those, with the label in the top 5.
        public let correctTop5: Int
        /// correct / count (nil without images).
        public var accuracy: Double? { count > 0 ? Double(correct) / Double(count) : nil }
        public var top5Accuracy: Double? { count > 0 ? Double(correctTop5) / Double(count) : nil }
    }

    public let classNames: [String]
    /// confusion[true class][predicted class].
    public private(set) var confusion: [[Int]]
    public private(set) var count = 0
    public private(set) var correctTop1 = 0
    public private(set) var correctTop5 = 0
    /// Rows of logits holding a NaN (counted as wrong; absent from the confusion matrix).
    public private(set) var invalidCount = 0
    private var correctTop5PerClass: [Int]
    private var classTotals: [Int]
    private var lossSum = 0.0

    /// An empty report for these classes (the logits' columns, in order).
    public init(classNames: [String]) {
        precondition(!classNames.isEmpty, "an evaluation needs at least one class")
        self.classNames = classNames
        confusion = Array(repeating: Array(repeating: 0, count: classNames.count), count: classNames.count)
        correctTop5PerClass = Array(repeating: 0, count: classNames.count)
        classTotals = Array(repeating: 0, count: classNames.count)
    }

    /// A report over one set of logits [N, classes] (or [N, 1, 1, classes]) and labels.
    public init(logits: Tensor, labels: [Int], classNames: [String]) {
        self.init(classNames: classNames)
        add(logits: logits, labels: labels)
    }

    /// Adds a batch: logits [N, classes] (or [N, 1, 1, classes]) and N labels in 0..<classes.
    public mutating func add(logits: Tensor, labels: [Int]) {
        let classes = classNames.count
        precondition(logits.rank >= 2 && logits.shape.last == classes && logits.count == labels.count * classes,
                     "logits \(logits.shape) do not fit \(labels.count) labels over \(classes) classes")
        let k = min(5, classes)
        logits.scalars.withUnsafeBufferPointer { values in
            for (n, label) in labels.enumerated() {
                precondition(label >= 0 && label < classes, "label \(label) outside 0..<\(classes)")
                let row = UnsafeBufferPointer(rebasing: values[(n * classes)..<((n + 1) * classes)])
                count += 1
                var best = 0
                var hasNaN = false
                var maximum = -Double.infinity
                for c in 0..<classes {
                    let v = row[c]
                    if v.isNaN { hasNaN = true }
                    if v > row[best] { best = c }
                    maximum = max(maximum, Double(v))
                }
                classTotals[label] += 1
                if hasNaN {
                    // A miss for every measure; not in the confusion matrix (no prediction).
                    lossSum += .nan
                    invalidCount += 1
                    continue
                }
                confusion[label][best] += 1
                if best == label { correctTop1 += 1 }
                let target = row[label]
                var greater = 0
                for c in 0..<classes where row[c] > target { greater += 1 }
                if greater < k {
                    correctTop5 += 1
                    correctTop5PerClass[label] += 1
                }
                // Cross-entropy in double: log Σ exp(x − max) − (x_label − max).
                var sum = 0.0
                for c in 0..<classes { sum += Foundation.exp(Double(row[c]) - maximum) }
                lossSum += Foundation.log(sum) - (Double(target) - maximum)
            }
        }
    }

    /// Adds another report over the same classes.
    public mutating func merge(_ other: EvaluationReport) {
        precondition(other.classNames == classNames, "reports over different classes")
        for t in 0..<confusion.count { for p in 0..<confusion.count { confusion[t][p] += other.confusion[t][p] } }
        count += other.count
        correctTop1 += other.correctTop1
        correctTop5 += other.correctTop5
        for c in 0..<correctTop5PerClass.count {
            correctTop5PerClass[c] += other.correctTop5PerClass[c]
            classTotals[c] += other.classTotals[c]
        }
        invalidCount += other.invalidCount
        lossSum += other.lossSum
    }

    /// Fraction correct (top-1); 0 without images.
    public var top1: Double { count > 0 ? Double(correctTop1) / Double(count) : 0 }
    /// Fraction with the label among the 5 largest logits (or all, with fewer classes).
    public var top5: Double { count > 0 ? Double(correctTop5) / Double(count) : 0 }
    /// Mean softmax cross-entropy (NaN if any logits were NaN).
    public var loss: Double { count > 0 ? lossSum / Double(count) : 0 }

    /// Per-class results, in class order.
    public var perClass: [ClassResult] {
        classNames.enumerated().map { c, name in
            ClassResult(name: name, count: classTotals[c], correct: confusion[c][c],
                        correctTop5: correctTop5PerClass[c])
        }
    }

    /// The mean of the per-class accuracies over classes with images.
    public var meanClassAccuracy: Double {
        let values = perClass.compactMap(\.accuracy)
        return values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
    }

    /// The report as JSON: totals, per-class results and the confusion matrix (rows: true class).
    public func json() throws -> String {
        struct PerClass: Encodable {
            let name: String
            let count: Int
            let correct: Int
            let accuracy: Double?
            let top5: Double?
        }
        struct Body: Encodable {
            let count: Int
            let top1: Double
            let top5: Double
            let loss: Double
            let mean_class_accuracy: Double
            let invalid: Int
            let classes: [String]
            let per_class: [PerClass]
            let confusion: [[Int]]
        }
        let body = Body(count: count, top1: top1, top5: top5, loss: loss, mean_class_accuracy: meanClassAccuracy,
                        invalid: invalidCount, classes: classNames,
                        per_class: perClass.map { PerClass(name: $0.name, count: $0.count, correct: $0.correct,
                                                           accuracy: $0.accuracy, top5: $0.top5Accuracy) },
                        confusion: confusion)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(body), as: UTF8.self)
    }

    /// A plain-text report: totals, then one line per class.
    public var summary: String {
        func pct(_ v: Double?) -> String {
            guard let v else { return "    -" }
            let s = String(format: "%5.1f%%", v * 100)
            return s
        }
        var lines = ["\(count) images: top-1 \(pct(top1)), top-5 \(pct(top5)), loss \(String(format: "%.4f", loss)), "
            + "mean per-class accuracy \(pct(meanClassAccuracy))"]
        let width = min(40, classNames.map(\.count).max() ?? 0)
        for r in perClass {
            let name = r.name.count > width ? String(r.name.prefix(width - 1)) + "…" : r.name.padding(toLength: width, withPad: " ", startingAt: 0)
            lines.append("  \(name)  \(pct(r.accuracy))  (\(r.correct)/\(r.count))")
        }
        return lines.joined(separator: "\n")
    }
}
