/// The one harness of the process: its state carries over between inputs.
let harness = FuzzHarness()

/// libFuzzer's entry point: answers one input, crashes on a broken promise.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    // libFuzzer passes a null pointer with count 0 for the empty input.
    let bytes = start.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    if let violation = harness.run(bytes) {
        fatalError("regiond promise broken: \(violation)")
    }
    return 0
}
