import ArgumentParser

/// `inception`: run, inspect, convert and summarise Inception V1 (GoogLeNet).
@main
struct InceptionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inception",
        abstract: "Inception V1 (GoogLeNet) exactly as TF-slim defines it: run, inspect and convert it.",
        subcommands: [Classify.self, Features.self, Visualize.self, Train.self, Eval.self, Serve.self, Summary.self, Run.self, Inspect.self, Convert.self, Bench.self]
    )
}
