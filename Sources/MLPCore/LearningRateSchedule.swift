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

    /// - Throws: `ConfigurationError` for a non-positive step size, total or a negative warm-up.
    public init(base: Float, decay: Decay = .constant, warmupSteps: Int = 0) throws {
        self.base = base
        self.decay = decay
        self.warmupSteps = warmupSteps
        guard warmupSteps >= 0 else {
            throw ConfigurationError(flag: "--warmup", value: "\(warmupSteps)", expected: "0 or more")
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
        if step < warmupSteps { return base * Float(step + 1) / Float(warmupSteps) }
        let s = step - warmupSteps
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

