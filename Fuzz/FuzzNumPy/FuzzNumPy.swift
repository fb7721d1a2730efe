import CFuzzMain
import MNIST

/// libFuzzer's entry point: any bytes, as a `.npy` file. Parsing must either succeed or throw `DataError`; a crash, a
/// trap or a sanitizer report is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNumPy(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do {
        let array = try NumPyArray.parse(bytes, file: "fuzz.npy")
        // Round trip what parsed: encoding and parsing again must give the same array (NaN payloads compare by bits).
        let again = try NumPyArray.parse(array.encoded(), file: "fuzz.npy (re-encoded)")
        precondition(again.shape == array.shape && again.elementType == array.elementType && again.encoded() == array.encoded(),
                     "NumPy round trip changed the array")
    } catch is DataError {
    } catch {
        fatalError("NumPyArray.parse threw something other than DataError: \(error)")
    }
    return 0
}
