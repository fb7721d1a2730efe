import CFuzzMain
import MNIST

/// libFuzzer's entry point: any bytes, as a CSV file whose last column is text (a target of class names) and the
/// others numbers, then with every column numeric and `;` between fields. Parsing must either succeed or throw
/// `DataError`; a crash, a trap or a sanitizer report is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCSV(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    for options in [CSVTable.Options(textColumns: ["0"]), CSVTable.Options(delimiter: UInt8(ascii: ";"), hasHeader: false)] {
        do {
            let table = try CSVTable.parse(bytes, file: "fuzz.csv", options: options)
            precondition(table.columns.allSatisfy {
                switch $0 {
                case .numbers(let v): return v.count == table.rowCount && v.allSatisfy(\.isFinite)
                case .text(let v): return v.count == table.rowCount
                }
            }, "a column of another length than the table")
        } catch is DataError {
        } catch {
            fatalError("CSVTable.parse threw something other than DataError: \(error)")
        }
    }
    return 0
}
