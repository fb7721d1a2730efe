import CFuzzMain
import MNIST

/// libFuzzer's entry point: any bytes, as an IDX file (raw, or gzip when they start like gzip). Parsing must either
/// succeed or throw `DataError`; a crash, a trap or a sanitizer report is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do {
        let array = try IDXArray.parse(bytes, file: "fuzz.idx")
        // Round trip what parsed: encoding and parsing again must give the same array.
        let again = try IDXArray.parse(array.encoded(), file: "fuzz.idx (re-encoded)")
        precondition(again.shape == array.shape && again.elementType == array.elementType, "IDX round trip changed the array")
    } catch is DataError {
    } catch {
        fatalError("IDXArray.parse threw something other than DataError: \(error)")
    }
    return 0
}
