// The C math functions the core uses, under names that do not depend on the platform's C library module.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif

@inlinable func _tanh(_ x: Float) -> Float { tanhf(x) }
@inlinable func _exp(_ x: Float) -> Float { expf(x) }
@inlinable func _log(_ x: Float) -> Float { logf(x) }
@inlinable func _pow(_ x: Double, _ y: Double) -> Double { pow(x, y) }
@inlinable func _cosine(_ x: Double) -> Double { cos(x) }
