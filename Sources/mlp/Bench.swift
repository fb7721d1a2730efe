import ArgumentParser
import CPUBackend
import CUDABackend
import Foundation
import MLPCore
import MNIST
import NaiveBackend

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure training throughput of the backends (and the Python peers) side by side.",
        usage: """
            mlp bench [--backends <backends>] [--workloads <workloads>] [--precision <precision>] [--repeats <repeats>] [--rounds <n>] [--peers] [--output <dir>] [<options>]
            """,
        discussion: """
            For each workload and backend: a warm-up, then --repeats timed runs of --epochs epochs over the MNIST \
            training set (shuffle, gather, forward, loss, backward, Adam update), then the test accuracy. The naive \
            backend is timed over --naive-steps steps instead of whole epochs (an epoch takes it minutes). \
            With --ops, each matrix product of each workload is timed alone (own GEMM and, where installed, the \
            BLAS), and the fused elementwise passes. With --peers, the NumPy, PyTorch and JAX scripts of \
            Benchmarks/peers run in the same invocation. Results go to --output as bench.json, bench.md and bench.svg.
            """)

    @Option(help: "Comma-separated backends: naive, cpu, cpu-dense (the cpu backend without skipping the inputs' zeros), cpu-bf16 (bf16 products), cuda.")
    var backends = "naive,cpu"
    @Option(help: "Comma-separated workloads: \(Workload.all.map(\.name).joined(separator: ", ")).")
    var workloads = "small-128,small-1024"
    @Option(help: "Epochs per timed run.")
    var epochs = 1
    @Option(help: "Timed runs per backend and workload (the median is reported).")
    var repeats = 3
    @Option(help: ArgumentHelp("Run every implementation (ours and the peers) this many times in turn, one after another, and pool the timed runs: a slow phase of a shared machine then falls on all of them, not on whichever ran during it. Each round's ratios are printed and written.", valueName: "n"))
    var rounds = 1
    @Option(help: "Steps per timed run of the naive backend.")
    var naiveSteps = 10
    @Flag(help: "Also time each matrix product and elementwise pass on its own.")
    var ops = false
    @Flag(help: "Also time every operation inside real training steps (where the step's time goes).")
    var profile = false
    @Flag(help: "Also run each backend (but naive) with the data streamed from host memory a batch at a time (\"cuda (streamed)\"), beside the data resident.")
    var stream = false
    @Flag(help: "Also run the Python peers (NumPy, PyTorch, JAX) where they are installed.")
    var peers = false
    @Option(help: "Comma-separated peers to run with --peers.")
    var peerList = "numpy,torch,jax"
    @Option(help: ArgumentHelp("Directory for bench.json, bench.md, bench.svg.", valueName: "dir"))
    var output = "bench-results"
    @Option(help: "cpu backend: threads in all. (default: one per core)")
    var threads: Int?
    @Option(help: "cpu backend GEMM: own or blas.")
    var gemm: CPUBackend.GEMMProvider = .own
    @Option(help: "cuda backend and the peers: fp32, tf32 or bf16 products (the cpu backend's bf16 is cpu-bf16); several, comma-separated (fp32,tf32), run each in turn in the same rounds.")
    var precision = "fp32"
    @Option(help: "Where the peers run: cpu, or cuda (with --backends cuda).")
    var peerDevice = "cpu"
    @Option(help: ArgumentHelp("Measure nothing: rewrite bench.md and bench.svg from this bench.json (e.g. one brought back from a GPU host).", valueName: "file"))
    var from: String?
    @Option(help: ArgumentHelp("The commit the results name (default: the source tree's, where git finds it; a GPU host's copy has none).", valueName: "hash"))
    var commit: String?
    @OptionGroup var data: DatasetOptions

    func validate() throws {
        if epochs < 1 { throw ValidationError("--epochs \(epochs): expected at least 1") }
        if repeats < 1 { throw ValidationError("--repeats \(repeats): expected at least 1") }
        if rounds < 1 { throw ValidationError("--rounds \(rounds): expected at least 1") }
        if naiveSteps < 1 { throw ValidationError("--naive-steps \(naiveSteps): expected at least 1") }
        if let t = threads, t < 1 { throw ValidationError("--threads \(t): expected at least 1") }
        _ = try precisions
    }

    /// `--precision`, each once, in the order given.
    var precisions: [Precision] {
        get throws {
            var list = [Precision]()
            for item in precision.split(separator: ",", omittingEmptySubsequences: false) {
                guard let p = Precision(rawValue: item.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("--precision \(precision): \"\(item)\" is not fp32, tf32 or bf16")
                }
                if !list.contains(p) { list.append(p) }
            }
            return list
        }
    }

    func run() throws {
        if let from {
            let report = try BenchReport.read(from: URL(fileURLWithPath: from))
            let directory = URL(fileURLWithPath: output)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try report.write(to: directory)
            print(report.markdownTable())
            print("wrote \(directory.path)/bench.json, bench.md, bench.svg from \(from)")
            return
        }
        let selectedWorkloads = try workloads.split(separator: ",").map { try Workload.named(String($0)) }
        let selectedBackends = try backends.split(separator: ",").map { name -> String in
            guard ["naive", "cpu", "cpu-dense", "cpu-bf16", "cuda"].contains(name) else {
                throw ValidationError("--backends \(name): expected naive, cpu, cpu-dense, cpu-bf16 or cuda")
            }
            return String(name)
        }
        let dataset = try data.load(logger: makeLogger(verbose: false))
        var report = BenchReport(machine: MachineInfo.current(commit: commit), command: CommandLine.arguments.joined(separator: " "))
        let cpu = try CPUBackend(threads: threads, gemm: gemm)
        // The same backend with every product dense, to measure what skipping the inputs' zeros buys in the same run.
        let cpuDense = selectedBackends.contains("cpu-dense") ? try CPUBackend(threads: threads, gemm: gemm, skipInputZeros: false) : nil
        // Every product with bf16 operands and fp32 sums (AVX-512 BF16), in the same rounds.
        let cpuBF16 = selectedBackends.contains("cpu-bf16") ? try CPUBackend(threads: threads, gemm: gemm, precision: .bf16) : nil
        report.cpuBackend = cpu.deviceDescription
        print("machine: \(report.machine.summary)")
        print("cpu backend: \(cpu.deviceDescription)")
        if cpu.skipsInputZeros { print("  \(BenchReport.denseOperationsNote)") }
        // The cuda backend once per precision asked for that it has, each with its own plans and recordings.
        let precisions = try self.precisions
        let cudaBackends = selectedBackends.contains("cuda") ? try precisions.map { p in
            try CUDABackend(precision: p.cuda, warn: { print("warning: \($0)") })
        } : []
        for cudaBackend in cudaBackends { print("cuda backend: \(cudaBackend.deviceDescription)") }
        report.gpu = cudaBackends.first?.deviceDescription
        report.peak = measurePeak(cpu)
        for cudaBackend in cudaBackends {
            let rate = gpuPeak(cudaBackend)
            if report.peak.gpuGFLOPs == nil { report.peak.gpuGFLOPs = rate }
            if cudaBackends.count > 1 { report.peak.gpuGFLOPsByPrecision = (report.peak.gpuGFLOPsByPrecision ?? [:]).merging([cudaBackend.precision.rawValue: rate]) { $1 } }
            print(String(format: "measured GPU peak: %.0f GFLOP/s (4096³, %@)", rate, cudaBackend.precision.rawValue))
        }
        print(String(format: "measured peak: %.1f GFLOP/s (own GEMM, 2048³)%@", report.peak.ownGFLOPs, report.peak.blasGFLOPs.map { String(format: ", %.1f GFLOP/s (BLAS)", $0) } ?? ""))

        if ops {
            for workload in selectedWorkloads {
                report.ops += try OpBenchmarks.run(workload: workload, threads: threads, data: dataset.train)
            }
            for r in report.ops { print(r.line) }
        }
        var byRound = [[BenchReport.Training]]()
        for round in 1...rounds {
            if rounds > 1 { print("round \(round) of \(rounds)") }
            var results = [BenchReport.Training]()
            for workload in selectedWorkloads {
                for backendName in selectedBackends {
                    // The naive backend does about 1 GFLOP/s: a wide-1024 step would take two minutes.
                    let naiveSeconds = workload.spec.trainingFLOPs(batch: workload.batch) / 1e9
                    if backendName == "naive" && naiveSeconds > 20 {
                        if round == 1 { print("\(workload.name): naive skipped (about \(Int(naiveSeconds)) s per step)") }
                        continue
                    }
                    let backends: [any Backend]
                    switch backendName {
                    case "naive": backends = [NaiveBackend()]
                    case "cuda": backends = cudaBackends
                    case "cpu-dense": backends = [cpuDense!]
                    case "cpu-bf16": backends = [cpuBF16!]
                    default: backends = [cpu]
                    }
                    for backend in backends {
                        var row = try TrainingBenchmark.run(
                            workload: workload, backend: backend, dataset: dataset, epochs: epochs, repeats: repeats,
                            steps: backendName == "naive" ? naiveSteps : nil)
                        row.device = backendName == "cuda" ? "cuda" : "cpu"
                        row.implementation = backendName
                        print(row.line)
                        results.append(row)
                        if stream && backendName != "naive" {
                            var streamed = try TrainingBenchmark.run(
                                workload: workload, backend: backend, dataset: dataset, epochs: epochs, repeats: repeats, steps: nil,
                                streamed: true)
                            streamed.device = row.device
                            streamed.implementation = "\(backendName) (streamed)"
                            print(streamed.line)
                            results.append(streamed)
                        }
                        if profile && round == 1 && backendName != "naive" {
                            var entries = try StepProfile.run(workload: workload, backend: backend, dataset: dataset)
                            // A variant's profile beside the default's: its rows say which they are.
                            let variant = backendName == "cpu-dense" ? " dense" : backendName == "cpu-bf16" ? " bf16"
                                : (backend as? CUDABackend).map { $0.precision == .fp32 ? "" : " \($0.precision.rawValue)" } ?? ""
                            for i in entries.indices { entries[i].workload += variant }
                            report.profile += entries
                        }
                    }
                }
            }
            if peers {
                let names = peerList.split(separator: ",").map(String.init)
                for p in precisions {
                    results += PeerRunner.run(names: names, workloads: selectedWorkloads, epochs: epochs, repeats: repeats, dataDirectory: dataset.directory, device: peerDevice, precision: p.rawValue)
                }
            }
            byRound.append(results)
        }
        report.training = BenchReport.pooled(byRound)
        if rounds > 1 {
            report.roundRatios = BenchReport.ratiosByRound(byRound)
            print("ours ÷ each implementation, round by round:")
            for line in report.roundRatios ?? [] { print("  \(line)") }
        }
        for p in report.profile { print(p.line) }
        for cudaBackend in cudaBackends where !cudaBackend.matmulReport.isEmpty {
            // Which cuBLASLt algorithm each product shape got, timed against the heuristic's first choice.
            print("cuBLASLt algorithm choices (\(cudaBackend.precision.rawValue)):")
            for line in cudaBackend.matmulReport { print("  \(line)") }
        }
        let directory = URL(fileURLWithPath: output)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try report.write(to: directory)
        print()
        print(report.markdownTable())
        let fastest = report.fastestPeersTable()
        if !fastest.isEmpty { print(fastest) }
        print("wrote \(directory.appendingPathComponent("bench.json").path), bench.md, bench.svg")
    }

    /// The machine's GEMM rate: a 2048³ product, best of three, own kernels and the BLAS if one loads.
    func measurePeak(_ cpu: CPUBackend) -> BenchReport.Peak {
        func rate(_ backend: CPUBackend) -> Double {
            let n = 2048
            guard let a = try? backend.allocate(Float.self, count: n * n), let b = try? backend.allocate(Float.self, count: n * n),
                  let c = try? backend.allocate(Float.self, count: n * n) else { return .nan }
            defer { backend.free(a); backend.free(b); backend.free(c) }
            var g = SeededGenerator(seed: 1)
            for i in 0..<n * n { a.host[i] = Float(g.unitDouble()); b.host[i] = Float(g.unitDouble()) }
            var best = 0.0
            for _ in 0..<3 {
                let t = now()
                backend.gemm(transposeA: false, transposeB: false, m: n, n: n, k: n, alpha: 1, a: a, lda: n, b: b, ldb: n, beta: 0, c: c, ldc: n)
                best = max(best, 2 * Double(n * n * n) / (now() - t) / 1e9)
            }
            return best
        }
        let own = cpu.gemmProvider == .own ? cpu : (try? CPUBackend(threads: threads, gemm: .own))
        let blas = cpu.gemmProvider == .blas ? cpu : (try? CPUBackend(threads: threads, gemm: .blas))
        let peak = BenchReport.Peak(ownGFLOPs: own.map(rate) ?? .nan, blasGFLOPs: blas.map(rate), blasName: blas?.blas?.name)
        if blas != nil { letBLASThreadsSettle() }
        return peak
    }
}

/// Times whole training epochs of one workload on one backend.
enum TrainingBenchmark {
    /// - Parameter streamed: the data streamed from host memory (`StreamedDataset`) instead of resident.
    static func run(workload: Workload, backend: any Backend, dataset: Dataset, epochs: Int, repeats: Int, steps: Int?,
                    streamed: Bool = false) throws -> BenchReport.Training {
        let spec = workload.spec
        let optimizer = OptimizerConfiguration.adam(learningRate: 1e-3)
        let maxBatch = max(workload.batch, 1000)
        let network = try Network(spec: spec, optimizer: optimizer, backend: backend, maxBatch: maxBatch)
        func source(_ images: LabeledImages) throws -> any BatchSource {
            try (streamed ? DataPlacement.Kind.streamed : .resident).source(LabeledSamples(images), on: backend, batchCapacity: maxBatch)
        }
        let train = try source(dataset.train)
        let test = try source(dataset.test)
        let indices = (0..<Int32(dataset.train.count)).map { $0 }
        var init_ = SeededGenerator(seed: 0)
        network.setParameters(ParameterLayout(spec).initialParameters(for: spec, using: &init_))
        var generator = SeededGenerator(seed: 1)
        var globalStep = 0
        /// The first `count` batches of `epoch`, as `Trainer` runs them (each told the next where the data holds it).
        func trainBatches(_ epoch: EpochBatches, count: Int) throws {
            let pass = try train.pass((0..<count).map { epoch.order[epoch.range(ofBatch: $0)] })
            defer { pass.end() }
            while let batch = try pass.next() {
                globalStep += 1
                network.trainStep(batch.data, batch: batch.rows, step: optimizer.step(globalStep, learningRate: 1e-3), next: batch.next)
            }
        }
        // Warm-up: first touches of every buffer, thread start, caches, and every kind of step an epoch takes three
        // times (a backend that records steps runs each kind once, then records it twice).
        network.warmUp(train, batchSizes: [workload.batch], evaluation: nil, step: optimizer.step(1, learningRate: 1e-3))
        // Then one whole epoch, not timed, as every peer takes one before its timed runs (compiling, recording):
        // the test accuracy is then taken after the same epochs for every implementation (1 + repeats × epochs).
        if steps == nil {
            let epoch = EpochBatches(indices: indices, batchSize: workload.batch, dropLast: true, generator: &generator)
            try trainBatches(epoch, count: epoch.count)
        }
        try backend.synchronize()

        var rates = [Double]()
        var stepTimes = [Double]()
        var hostBusy = [Double](), hostWaiting = [Double]()
        let cuda = backend as? CUDABackend
        for _ in 0..<repeats {
            var samples = 0
            let waitedBefore = cuda?.hostWaitSeconds ?? 0
            let start = now()
            if let steps {
                let epoch = EpochBatches(indices: indices, batchSize: workload.batch, dropLast: true, generator: &generator)
                let count = min(steps, epoch.count)
                try trainBatches(epoch, count: count)
                samples += count * workload.batch
            } else {
                for _ in 0..<epochs {
                    // The shuffle is inside the timed region, as it is part of an epoch.
                    let epoch = EpochBatches(indices: indices, batchSize: workload.batch, dropLast: true, generator: &generator)
                    try trainBatches(epoch, count: epoch.count)
                    samples += epoch.count * workload.batch
                }
            }
            let issued = now() - start
            try backend.synchronize()
            let seconds = now() - start
            rates.append(Double(samples) / seconds)
            stepTimes.append(seconds / Double(samples / workload.batch))
            if let cuda {
                let waited = cuda.hostWaitSeconds - waitedBefore, steps = Double(samples / workload.batch)
                hostBusy.append((issued - waited) / steps)
                hostWaiting.append(waited / steps)
            }
        }
        if let cuda, cuda.options.traces {
            // MLP_CUDA_TRACE=1: where a recorded step's time goes, between timing events inside its graph.
            // An epoch replays recordings of more than one kind (its first step gathers its batch, the others find it
            // gathered): an operation of only some of them counts in the step's total in proportion.
            let trace = cuda.takeTrace()
            let replays = trace.map(\.count).max() ?? 0
            let inside = trace.reduce(0) { $0 + $1.microseconds * Double($1.count) / Double(max(1, replays)) }
            print(String(format: "%@ trace (main stream, mean of %d replays; the events lengthen the step):", workload.name, replays))
            for entry in trace {
                let share = entry.count < replays ? " (in \(entry.count) of \(replays) replays)" : ""
                print(String(format: "  %7.1f µs  %@%@", entry.microseconds, entry.label, share))
            }
            print(String(format: "  %7.1f µs  inside the graph, of %.1f µs a step: %.1f µs between graphs", inside,
                         Summary(stepTimes).median * 1e6, Summary(stepTimes).median * 1e6 - inside))
        }
        if !hostBusy.isEmpty {
            // Whether the host keeps up: its own work per step against the time it waited for the GPU.
            print(String(format: "%@ cuda host per step: %.1f µs issuing, %.1f µs waiting for the GPU (medians of %d runs)",
                         workload.name, Summary(hostBusy).median * 1e6, Summary(hostWaiting).median * 1e6, hostBusy.count))
        }
        let accuracy = steps == nil ? try network.evaluate(source: test, indices: (0..<Int32(dataset.test.count)).map { $0 }).accuracy : nil
        let throughput = Summary(rates)
        let flopsPerSample = spec.trainingFLOPs(batch: 1)
        var note = steps.map { "\($0) steps per run" } ?? "\(epochs) epoch(s) per run"
        if let stream = train as? StreamedDataset {
            // What the copies moved: each batch's window (values in their stored type, labels) once.
            let bytesPerSecond = Double(stream.batchBytes(rows: workload.batch)) / Double(workload.batch) * throughput.median
            note += String(format: ", streamed: %.2f GB/s host to device", bytesPerSecond / 1e9)
            print(String(format: "%@ %@ streamed: %.2f GB/s host to device (%d bytes a batch)", workload.name, backend.name,
                         bytesPerSecond / 1e9, stream.batchBytes(rows: workload.batch)))
        }
        return BenchReport.Training(
            implementation: backend.name, workload: workload.name,
            precision: (backend as? CUDABackend)?.precision.rawValue ?? ((backend as? CPUBackend)?.precision == .bf16 ? "bf16" : "fp32"),
            samplesPerSecond: throughput,
            stepMicroseconds: Summary(stepTimes).median * 1e6, gflops: throughput.median * flopsPerSample / 1e9,
            testAccuracy: accuracy, note: note)
    }
}

/// The GPU's product rate: a 4096³ product through the backend, best of 5 after a warm-up, timed with the host
/// clock around a synchronisation.
func gpuPeak(_ backend: CUDABackend) -> Double {
    let n = 4096
    guard let a = try? backend.allocate(Float.self, count: n * n), let b = try? backend.allocate(Float.self, count: n * n),
          let c = try? backend.allocate(Float.self, count: n * n) else { return .nan }
    defer { backend.free(a); backend.free(b); backend.free(c) }
    var g = SeededGenerator(seed: 2)
    let values = (0..<n * n).map { _ in Float(g.unitDouble()) - 0.5 }
    values.withUnsafeBufferPointer { backend.upload($0, to: a); backend.upload($0, to: b) }
    var best = 0.0
    for i in 0..<6 {
        let t = now()
        for _ in 0..<5 {
            backend.gemm(transposeA: false, transposeB: false, m: n, n: n, k: n, alpha: 1, a: a, lda: n, b: b, ldb: n, beta: 0, c: c, ldc: n)
        }
        guard (try? backend.synchronize()) != nil else { return .nan }
        if i > 0 { best = max(best, 5 * 2 * Double(n * n * n) / (now() - t) / 1e9) }
    }
    return best
}

/// A BLAS's worker threads (OpenBLAS's) keep spinning for a while after a call; whatever is timed next would
/// share the cores with them. Wait until they sleep.
func letBLASThreadsSettle() { usleep(1_500_000) }
