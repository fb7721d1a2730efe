#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif

/// A backend that computes in host memory (the naive and cpu backends): its memory operations are ordinary heap
/// blocks, 64-byte aligned (a cache line, and the widest vector), zero-filled; copies are `memcpy`; there is
/// nothing to wait for.
public protocol HostMemoryBackend: Backend {}

extension HostMemoryBackend {
    public var isHostMemory: Bool { true }

    public func allocate<T>(_ type: T.Type, count: Int) throws -> DevicePointer<T> {
        let bytes = max(count, 1) * MemoryLayout<T>.stride
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else { throw HostMemoryError(bytes: bytes) }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return DevicePointer(address: UInt(bitPattern: raw))
    }

    public func free<T>(_ pointer: DevicePointer<T>) {
        #if canImport(Glibc)
        Glibc.free(UnsafeMutableRawPointer(bitPattern: pointer.address))
        #elseif canImport(Musl)
        Musl.free(UnsafeMutableRawPointer(bitPattern: pointer.address))
        #else
        Darwin.free(UnsafeMutableRawPointer(bitPattern: pointer.address))
        #endif
    }

    public func upload<T>(_ source: UnsafeBufferPointer<T>, to destination: DevicePointer<T>) {
        guard let base = source.baseAddress, !source.isEmpty else { return }
        UnsafeMutableRawPointer(destination.host).copyMemory(from: base, byteCount: source.count * MemoryLayout<T>.stride)
    }

    public func download<T>(_ source: DevicePointer<T>, count: Int, into destination: UnsafeMutableBufferPointer<T>) {
        precondition(destination.count >= count)
        guard count > 0 else { return }
        UnsafeMutableRawPointer(destination.baseAddress!).copyMemory(from: source.host, byteCount: count * MemoryLayout<T>.stride)
    }

    public func synchronize() throws {}
}

extension ComposedLayers where Self: HostMemoryBackend {
    /// The regression loss as its definition's plain loop, one thread, for both host backends: the pass is B × k
    /// elementwise work beside products of B × k × hidden, so the cpu backend gains nothing from its own kernel, and
    /// the cuda backend's `regression_loss` kernel is checked against this loop.
    public func regressionLoss(
        gradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, outputs: DevicePointer<Float>,
        targets: RegressionTargets, rows: Int, columns: Int, loss: Loss, gradientScale: Float
    ) {
        precondition(loss.isRegression, "\(loss.rawValue) is not a regression loss")
        let z = outputs.host, table = targets.table.host, sampleRows = targets.rows.host, m = metrics.host
        let perOutput = 1 / Float(columns)
        for r in 0..<rows {
            let t = table + Int(sampleRows[r]) * columns
            var rowLoss: Float = 0, squares: Float = 0
            for c in 0..<columns {
                let d = z[r * columns + c] - t[c]
                rowLoss += loss.regressionTerm(d)
                squares += d * d
                gradient?.host[r * columns + c] = gradientScale * loss.regressionDerivative(d) * perOutput
            }
            m[0] += rowLoss * perOutput
            m[1] += squares
        }
    }
}

/// Host memory ran out.
public struct HostMemoryError: Error, CustomStringConvertible, Sendable {
    public var bytes: Int
    public var description: String { "cannot allocate \(bytes) bytes of host memory" }
}
