/// The learning rate as a function of the optimizer step.
///
/// Steps count from 0 (the first update uses `rate(atStep: 0)`). With `warmupSteps = W > 0`, the rate rises
/// linearly over the first W steps, `base · (s + 1) / W`, and the decay below counts from the end of the warm-up.
public struct LearningRateSchedule: Sendable, Equatable, Codable {
    /// How the rate moves after the warm-up.
    public enum Decay: Sendable, Equatable, Codable {
        /// The base rate throughout.
        case constant
        /// Multiplied by `gamma` every `stepSize` steps: `base · gamma^⌊s / stepSize⌋`.
        case step(stepSize: Int, gamma: Float)
        /// Half a cosine from the base rate down to `minimum` over `totalSteps`, then `minimum`:
        /// `minimum + (base − minimum)(1 + cos(π s / totalSteps)) / 2`.
        case cosine(totalSteps: Int, minimum: Float)
    }

    /// The learning rate the schedule starts from (after the warm-up).
    public var base: Float
    /// How it decays.
    public var decay: Decay
    /// Steps of linear warm-up from 0 to `base` (0: none).
    public var warmupSteps: Int
    /// Later parts of the schedule, one for each time a run was extended on resume (`mlp train --resume … --epochs`),
    /// in order: from its `fromStep` on, the rate follows its own decay; the steps before it keep the rates they had.
    public var extensions: [Extension] = []

    /// A part of the schedule added to a run that is extended: from step `fromStep` (the end of the run as it was)
    /// on, `decay` from `base`, counting its steps from `fromStep`.
    public struct Extension: Sendable, Equatable, Codable {
        public var fromStep: Int
        public var base: Float
        public var decay: Decay

        public init(fromStep: Int, base: Float, decay: Decay) {
            self.fromStep = fromStep
            self.base = base
            self.decay = decay
        }
    }

    enum CodingKeys: String, CodingKey { case base, decay, warmupSteps, extensions }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        base = try c.decode(Float.self, forKey: .base)
        decay = try c.decode(Decay.self, forKey: .decay)
        warmupSteps = try c.decode(Int.self, forKey: .warmupSteps)
        // Checkpoints written before runs could be extended have none.
        extensions = try c.decodeIfPresent([Extension].self, forKey: .extensions) ?? []
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(base, forKey: .base)
        try c.encode(decay, forKey: .decay)
        try c.encode(warmupSteps, forKey: .warmupSteps)
        // Only when there are some: a run never extended writes the configuration it always did.
        if !extensions.isEmpty { try c.encode(extensions, forKey: .extensions) }
    }

    /// - Throws: `ConfigurationError` for a non-positive step size, total or a negative warm-up.
    public init(base: Float, decay: Decay = .constant, warmupSteps: Int = 0) throws {
        self.base = base
        self.decay = decay
        self.warmupSteps = warmupSteps
        try validate()
    }

    /// The initialiser's checks, and each extension's (a schedule decoded from a file has been through none).
    /// - Throws: `ConfigurationError` for a non-positive step size, total or base, a negative warm-up, or extensions
    ///   that do not follow one another.
    public func validate() throws {
        guard warmupSteps >= 0 else {
            throw ConfigurationError(flag: "--warmup", value: "\(warmupSteps)", expected: "0 or more")
        }
        try Self.validate(decay, base: base)
        var previous = -1
        for part in extensions {
            guard part.fromStep > previous else {
                throw ConfigurationError(flag: "--extend-schedule", value: "from step \(part.fromStep)", expected: "extensions that start later than the one before")
            }
            try Self.validate(part.decay, base: part.base)
            previous = part.fromStep
        }
    }

    static func validate(_ decay: Decay, base: Float) throws {
        guard base.isFinite, base >= 0 else {
            throw ConfigurationError(flag: "--lr", value: "\(base)", expected: "a finite number, 0 or more")
        }
        switch decay {
        case .constant: break
        case let .step(stepSize, gamma):
            guard stepSize > 0 else { throw ConfigurationError(flag: "--lr-step", value: "\(stepSize)", expected: "at least 1") }
            guard gamma.isFinite, gamma > 0 else { throw ConfigurationError(flag: "--lr-gamma", value: "\(gamma)", expected: "a finite number above 0") }
        case let .cosine(totalSteps, minimum):
            guard totalSteps > 0 else { throw ConfigurationError(flag: "--epochs", value: "\(totalSteps)", expected: "a cosine schedule over at least one step") }
            guard minimum.isFinite, minimum >= 0, minimum <= base else {
                throw ConfigurationError(flag: "--lr-min", value: "\(minimum)", expected: "a number from 0 to the learning rate \(base)")
            }
        }
    }

    /// The rate for 0-based step `step`.
    public func rate(atStep step: Int) -> Float {
        // A plain loop (the trainer asks every step, and generic wrappers allocate in debug builds).
        var i = extensions.count - 1
        while i >= 0 {
            let part = extensions[i]
            if part.fromStep <= step { return Self.rate(decay: part.decay, base: part.base, step: step - part.fromStep) }
            i -= 1
        }
        if step < warmupSteps { return base * Float(step + 1) / Float(warmupSteps) }
        return Self.rate(decay: decay, base: base, step: step - warmupSteps)
    }

    /// `decay`'s rate `s` steps after it starts from `base`.
    static func rate(decay: Decay, base: Float, step s: Int) -> Float {
        switch decay {
        case .constant:
            return base
        case let .step(stepSize, gamma):
            return base * Float(_pow(Double(gamma), Double(s / stepSize)))
        case let .cosine(totalSteps, minimum):
            guard s < totalSteps else { return minimum }
            let c = (1 + _cosine(Double.pi * Double(s) / Double(totalSteps))) / 2
            return minimum + (base - minimum) * Float(c)
        }
    }
}

