/// A small, fast, seedable random number generator (xoshiro256**, Blackman and Vigna, 2018), seeded through
/// SplitMix64 as its authors recommend.
///
/// Everything random in training (initial weights, shuffles, validation splits) draws from a generator passed in,
/// never from the system's, so that a seed gives the same run on every machine and a checkpoint can store
/// `state` and continue exactly.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Equatable {
    /// The four 64-bit words of state; never all zero.
    @usableFromInline var state: (UInt64, UInt64, UInt64, UInt64)

    /// A generator whose sequence is fixed by `seed`.
    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    /// A generator that continues from a saved `state` (as read back from a checkpoint).
    /// - Precondition: not all four words are zero.
    public init(state: [UInt64]) {
        precondition(state.count == 4 && state.contains { $0 != 0 }, "a xoshiro256 state is four words, not all zero")
        self.state = (state[0], state[1], state[2], state[3])
    }

    /// The state as an array, for saving.
    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    /// Two generators are equal when their states are: they will draw the same sequence.
    public static func == (a: SeededGenerator, b: SeededGenerator) -> Bool { a.stateWords == b.stateWords }

    @inlinable
    /// The next 64 random bits (xoshiro256**).
    public mutating func next() -> UInt64 {
        let result = rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
        return result
    }

    @inlinable func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// A uniform integer in `0..<bound` without modulo bias (Lemire's multiply-and-reject method).
    public mutating func uniform(below bound: Int) -> Int {
        precondition(bound > 0)
        let b = UInt64(bound)
        var m = next().multipliedFullWidth(by: b)
        if m.low < b {
            let threshold = (0 &- b) % b
            while m.low < threshold { m = next().multipliedFullWidth(by: b) }
        }
        return Int(m.high)
    }

    /// A uniform Double in [0, 1) with 53 random bits.
    public mutating func unitDouble() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A standard normal sample (Box–Muller; one of the pair is used, so a call always takes two draws).
    public mutating func gaussian() -> Double {
        let u1 = 1 - unitDouble()  // (0, 1]: the logarithm stays finite
        let u2 = unitDouble()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
    }

    /// Shuffles `values` in place (Fisher–Yates with `uniform(below:)`), the same way on every platform.
    public mutating func shuffle<T>(_ values: inout [T]) {
        guard values.count > 1 else { return }
        for i in stride(from: values.count - 1, to: 0, by: -1) {
            let j = uniform(below: i + 1)
            values.swapAt(i, j)
        }
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#elseif canImport(Musl)
import Musl
@inline(__always) func _log(_ x: Double) -> Double { Musl.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Musl.cos(x) }
#else
import Darwin
@inline(__always) func _log(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Darwin.cos(x) }
#endif
