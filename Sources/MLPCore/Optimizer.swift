/// An optimizer and its hyperparameters.
///
/// The updates follow PyTorch's definitions (so that runs compare with the peers), for parameters `p`, gradient `g`,
/// learning rate `η` and weight decay `λ`:
/// - **SGD** (`momentum` μ, optional Nesterov): `g ← g + λp`; `b ← μb + g`; `p ← p − η·(g + μb)` with Nesterov,
///   `p ← p − η·b` without; with μ = 0, `p ← p − η·g`. The buffer starts at zero, which equals PyTorch's
///   first-step `b = g`.
/// - **Adam** (Kingma & Ba, 2015, with L2 weight decay as PyTorch's `Adam`): `g ← g + λp`;
///   `m ← β₁m + (1−β₁)g`; `v ← β₂v + (1−β₂)g²`; `p ← p − η·(m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)`.
/// - **AdamW** (Loshchilov & Hutter, 2019, decoupled weight decay): `p ← p(1 − ηλ)` first, then Adam without the
///   `λp` term.
///
/// Weight decay, when set, applies to every parameter, biases included (PyTorch's default for one group).
public struct OptimizerConfiguration: Sendable, Equatable, Codable {
    /// The optimizers, named as on the command line.
    public enum Kind: String, CaseIterable, Sendable, Codable {
        case sgd, adam, adamw
    }

    /// Which optimizer.
    public var kind: Kind
    /// The learning rate η (of this step, for `OptimizerStep`).
    public var learningRate: Float
    /// SGD's momentum μ (0: none).
    public var momentum: Float
    /// SGD with Nesterov momentum.
    public var nesterov: Bool
    /// The weight decay λ (L2 for SGD and Adam, decoupled for AdamW).
    public var weightDecay: Float
    /// Adam's β₁, the first moment's decay.
    public var beta1: Float
    /// Adam's β₂, the second moment's decay.
    public var beta2: Float
    /// Adam's ε, added to the denominator.
    public var epsilon: Float

    /// - Throws: `ConfigurationError` naming the flag whose value is out of range.
    public init(
        kind: Kind, learningRate: Float, momentum: Float = 0, nesterov: Bool = false, weightDecay: Float = 0,
        beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8
    ) throws {
        self.kind = kind
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        try validate()
    }

    /// Adam with PyTorch's defaults and `learningRate`.
    public static func adam(learningRate: Float = 1e-3) -> OptimizerConfiguration {
        try! OptimizerConfiguration(kind: .adam, learningRate: learningRate)
    }

    /// Checks every hyperparameter; the error names the command-line flag.
    public func validate() throws {
        func check(_ ok: Bool, _ flag: String, _ value: Float, _ expected: String) throws {
            if !ok { throw ConfigurationError(flag: flag, value: "\(value)", expected: expected) }
        }
        try check(learningRate.isFinite && learningRate > 0, "--lr", learningRate, "a finite number above 0")
        try check(momentum.isFinite && momentum >= 0 && momentum < 1, "--momentum", momentum, "a number in [0, 1)")
        try check(weightDecay.isFinite && weightDecay >= 0, "--weight-decay", weightDecay, "a finite number ≥ 0")
        try check(beta1.isFinite && beta1 >= 0 && beta1 < 1, "--beta1", beta1, "a number in [0, 1)")
        try check(beta2.isFinite && beta2 >= 0 && beta2 < 1, "--beta2", beta2, "a number in [0, 1)")
        try check(epsilon.isFinite && epsilon > 0, "--epsilon", epsilon, "a finite number above 0")
        if nesterov && momentum == 0 {
            throw ConfigurationError(flag: "--nesterov", value: "set", expected: "a --momentum above 0 (Nesterov needs momentum)")
        }
        if kind != .sgd && (momentum != 0 || nesterov) {
            throw ConfigurationError(flag: "--momentum", value: "\(momentum)", expected: "only with --optimizer sgd")
        }
    }

    /// Number of state arrays the size of the parameters: momentum for SGD with momentum, two moments for Adam.
    public var stateSlots: Int {
        switch kind {
        case .sgd: return momentum > 0 ? 1 : 0
        case .adam, .adamw: return 2
        }
    }

    /// Names of the state slots in checkpoints (PyTorch's names).
    public var stateNames: [String] {
        switch kind {
        case .sgd: return momentum > 0 ? ["momentum_buffer"] : []
        case .adam, .adamw: return ["exp_avg", "exp_avg_sq"]
        }
    }

    /// The values an update needs at 1-based step `step` with learning rate `learningRate` (from the schedule).
    public func step(_ step: Int, learningRate: Float) -> OptimizerStep {
        OptimizerStep(
            kind: kind, learningRate: learningRate, momentum: momentum, nesterov: nesterov, weightDecay: weightDecay,
            beta1: beta1, beta2: beta2, epsilon: epsilon, step: step)
    }
}

/// The hyperparameters of one update, as a backend receives them. See `OptimizerConfiguration` for the formulas.
public struct OptimizerStep: Sendable, Equatable {
    /// Which optimizer.
    public var kind: OptimizerConfiguration.Kind
    /// The learning rate η (of this step, for `OptimizerStep`).
    public var learningRate: Float
    /// SGD's momentum μ (0: none).
    public var momentum: Float
    /// SGD with Nesterov momentum.
    public var nesterov: Bool
    /// The weight decay λ (L2 for SGD and Adam, decoupled for AdamW).
    public var weightDecay: Float
    /// Adam's β₁, the first moment's decay.
    public var beta1: Float
    /// Adam's β₂, the second moment's decay.
    public var beta2: Float
    /// Adam's ε, added to the denominator.
    public var epsilon: Float
    /// 1 for the first update.
    public var step: Int

    /// One update's values, as `OptimizerConfiguration.step(_:learningRate:)` makes them.
    public init(
        kind: OptimizerConfiguration.Kind, learningRate: Float, momentum: Float, nesterov: Bool, weightDecay: Float,
        beta1: Float, beta2: Float, epsilon: Float, step: Int
    ) {
        self.kind = kind
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.step = step
    }

    /// Adam's bias corrections `1 − β₁ᵗ` and `1 − β₂ᵗ`, computed in Double and rounded once.
    public var biasCorrections: (first: Float, second: Float) {
        let t = Double(step)
        return (Float(1 - _pow(Double(beta1), t)), Float(1 - _pow(Double(beta2), t)))
    }
}

/// A configuration value out of range: names the flag, the value and what was expected.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The command-line flag that sets the value (`--lr`, `--layers`, …).
    public var flag: String
    /// The value given.
    public var value: String
    /// What was expected instead.
    public var expected: String

    /// An error for `flag` given `value`, saying what was `expected`.
    public init(flag: String, value: String, expected: String) {
        self.flag = flag
        self.value = value
        self.expected = expected
    }

    /// "`flag` `value`: expected `expected`", as the tool prints it.
    public var description: String { "\(flag) \(value): expected \(expected)" }
}

