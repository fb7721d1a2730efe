import Foundation

typealias CUresult = Int32

/// The CUDA driver API (libcuda.so.1), the functions this backend uses, as typed function pointers.
struct CUDADriver {
    let path: String
    let cuInit: @convention(c) (UInt32) -> CUresult
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> CUresult
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> CUresult
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> CUresult
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32) -> CUresult
    let cuCtxSetCurrent: @convention(c) (OpaquePointer?) -> CUresult
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> CUresult
    let cuStreamSynchronize: @convention(c) (OpaquePointer?) -> CUresult
    let cuStreamDestroy: @convention(c) (OpaquePointer?) -> CUresult
    /// free, total: the device's memory in bytes.
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> CUresult
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<UInt64>, Int) -> CUresult
    let cuMemFree: @convention(c) (UInt64) -> CUresult
    let cuMemcpyHtoD: @convention(c) (UInt64, UnsafeRawPointer, Int) -> CUresult
    let cuMemcpyDtoH: @convention(c) (UnsafeMutableRawPointer, UInt64, Int) -> CUresult
    let cuMemsetD8: @convention(c) (UInt64, UInt8, Int) -> CUresult
    let cuMemAllocHost: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int) -> CUresult
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> CUresult
    let cuMemcpyHtoDAsync: @convention(c) (UInt64, UnsafeRawPointer, Int, OpaquePointer?) -> CUresult
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> CUresult
    let cuEventRecord: @convention(c) (OpaquePointer?, OpaquePointer?) -> CUresult
    /// event, stream, flags: with `CU_EVENT_RECORD_EXTERNAL` (1) a capture records an event node that timing can read,
    /// where a plain record inside a capture only orders the streams.
    let cuEventRecordWithFlags: @convention(c) (OpaquePointer?, OpaquePointer?, UInt32) -> CUresult
    let cuEventSynchronize: @convention(c) (OpaquePointer?) -> CUresult
    let cuStreamBeginCapture: @convention(c) (OpaquePointer?, Int32) -> CUresult
    let cuStreamEndCapture: @convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>) -> CUresult
    let cuGraphInstantiate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UInt64) -> CUresult
    let cuGraphLaunch: @convention(c) (OpaquePointer?, OpaquePointer?) -> CUresult
    let cuGraphDestroy: @convention(c) (OpaquePointer?) -> CUresult
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeRawPointer) -> CUresult
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UnsafePointer<CChar>) -> CUresult
    /// function, attribute, value: here `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES` (8), the opt-in to more than
    /// 48 KB of dynamic shared memory a block.
    let cuFuncSetAttribute: @convention(c) (OpaquePointer?, Int32, Int32) -> CUresult
    let cuLaunchKernel: @convention(c) (OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
                                         UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult
    /// `cuLaunchKernelEx` (driver 11.8 and later; nil before): a launch with attributes, here programmatic stream
    /// serialisation (see `CUDABackend.launchesDependents`). Its first argument is a `CUlaunchConfig`.
    let cuLaunchKernelEx: (@convention(c) (UnsafeRawPointer, OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                            UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult)?
    let cuStreamWaitEvent: @convention(c) (OpaquePointer?, OpaquePointer?, UInt32) -> CUresult
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, OpaquePointer?, OpaquePointer?) -> CUresult
    let cuEventDestroy: @convention(c) (OpaquePointer?) -> CUresult
    let cuGraphExecDestroy: @convention(c) (OpaquePointer?) -> CUresult
    /// A recorded graph's kernel nodes, to change one's arguments in the executable graph between launches (see
    /// `CUDABackend.inlineIndexLimit`); nil where the driver lacks one of them. `cuGraphGetNodes` (graph, nodes or nil,
    /// count in/out), `cuGraphNodeGetType` (node, type: 0 is a kernel), and the `_v2` parameter calls, whose
    /// `CUDA_KERNEL_NODE_PARAMS_v2` is 72 bytes (see `RecordedKernelNode`).
    let graphNodes: GraphNodeCalls?
    struct GraphNodeCalls {
        let cuGraphGetNodes: @convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>?, UnsafeMutablePointer<Int>) -> CUresult
        let cuGraphNodeGetType: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> CUresult
        let cuGraphKernelNodeGetParams: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer) -> CUresult
        let cuGraphExecKernelNodeSetParams: @convention(c) (OpaquePointer?, OpaquePointer?, UnsafeRawPointer) -> CUresult
    }
    let cuGetErrorName: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult
    let cuGetErrorString: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult

    static func load() throws -> CUDADriver {
        let (h, path) = try LibraryLoader.open("the CUDA driver (libcuda.so.1; is the NVIDIA driver installed?)", names: ["libcuda.so.1", "libcuda.so"])
        func f<T>(_ name: String) throws -> T { try LibraryLoader.symbol(h, name, in: path, as: T.self) }
        return try CUDADriver(
            path: path, cuInit: f("cuInit"),
            cuDriverGetVersion: f("cuDriverGetVersion"),
            cuDeviceGet: f("cuDeviceGet"),
            cuDeviceGetCount: f("cuDeviceGetCount"),
            cuDeviceGetName: f("cuDeviceGetName"),
            cuDeviceGetAttribute: f("cuDeviceGetAttribute"),
            cuDevicePrimaryCtxRetain: f("cuDevicePrimaryCtxRetain"),
            cuCtxSetCurrent: f("cuCtxSetCurrent"),
            cuStreamCreate: f("cuStreamCreate"),
            cuStreamSynchronize: f("cuStreamSynchronize"),
            cuStreamDestroy: f("cuStreamDestroy_v2"),
            cuMemGetInfo: f("cuMemGetInfo_v2"),
            cuMemAlloc: f("cuMemAlloc_v2"),
            cuMemFree: f("cuMemFree_v2"),
            cuMemcpyHtoD: f("cuMemcpyHtoD_v2"),
            cuMemcpyDtoH: f("cuMemcpyDtoH_v2"),
            cuMemsetD8: f("cuMemsetD8_v2"),
            cuMemAllocHost: f("cuMemAllocHost_v2"),
            cuMemFreeHost: f("cuMemFreeHost"),
            cuMemcpyHtoDAsync: f("cuMemcpyHtoDAsync_v2"),
            cuEventCreate: f("cuEventCreate"),
            cuEventRecord: f("cuEventRecord"),
            cuEventRecordWithFlags: f("cuEventRecordWithFlags"),
            cuEventSynchronize: f("cuEventSynchronize"),
            cuStreamBeginCapture: f("cuStreamBeginCapture_v2"),
            cuStreamEndCapture: f("cuStreamEndCapture"),
            cuGraphInstantiate: f("cuGraphInstantiateWithFlags"),
            cuGraphLaunch: f("cuGraphLaunch"),
            cuGraphDestroy: f("cuGraphDestroy"),
            cuModuleLoadData: f("cuModuleLoadData"),
            cuModuleGetFunction: f("cuModuleGetFunction"),
            cuFuncSetAttribute: f("cuFuncSetAttribute"),
            cuLaunchKernel: f("cuLaunchKernel"),
            cuLaunchKernelEx: try? f("cuLaunchKernelEx"),
            cuStreamWaitEvent: f("cuStreamWaitEvent"),
            cuEventElapsedTime: f("cuEventElapsedTime"),
            cuEventDestroy: f("cuEventDestroy_v2"),
            cuGraphExecDestroy: f("cuGraphExecDestroy"),
            graphNodes: try? GraphNodeCalls(
                cuGraphGetNodes: f("cuGraphGetNodes"), cuGraphNodeGetType: f("cuGraphNodeGetType"),
                cuGraphKernelNodeGetParams: f("cuGraphKernelNodeGetParams_v2"),
                cuGraphExecKernelNodeSetParams: f("cuGraphExecKernelNodeSetParams_v2")),
            cuGetErrorName: f("cuGetErrorName"),
            cuGetErrorString: f("cuGetErrorString"))
    }

    /// Turns a status into an error naming the call and what the driver says of the status.
    func check(_ status: CUresult, _ call: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        var name: UnsafePointer<CChar>?, text: UnsafePointer<CChar>?
        _ = cuGetErrorName(status, &name)
        _ = cuGetErrorString(status, &text)
        var message = "\(call()) failed: \(name.map { String(cString: $0) } ?? "CUresult \(status)"): \(text.map { String(cString: $0) } ?? "unknown error")"
        if status == 34 {  // CUDA_ERROR_STUB_LIBRARY
            message += " (\(path) is the CUDA toolkit's stub, not the driver: install the NVIDIA driver or put its libcuda.so.1 first on the library path)"
        }
        throw CUDAError(message)
    }
}
