import CFuzzMain
import MLPCore

/// libFuzzer's entry point: any bytes, as a checkpoint (a safetensors file whose metadata and tensors must fit the
/// network it describes). Reading must either succeed or throw `SafeTensorsError`; a crash, a trap, a huge
/// allocation or a sanitizer report is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do {
        let file = try SafeTensors.decode(bytes, file: "fuzz.safetensors")
        for name in file.entries.keys.sorted() { _ = try? file.floats(name) }
        _ = try Checkpoint.decode(bytes, path: "fuzz.safetensors")
    } catch is SafeTensorsError {
    } catch {
        fatalError("reading a checkpoint threw something other than SafeTensorsError: \(error)")
    }
    return 0
}
