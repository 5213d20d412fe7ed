// libFuzzer brings its own `main`; this file's (empty) top-level code is
// renamed by SwiftPM and only runs in a plain build, where it does nothing.

/// libFuzzer's entry point: answers one input, crashes on a broken promise.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    // libFuzzer passes a null pointer with count 0 for the empty input.
    let bytes = start.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    if let violation = FuzzHarness.shared.run(bytes) {
        fatalError("regiond promise broken: \(violation)")
    }
    return 0
}
