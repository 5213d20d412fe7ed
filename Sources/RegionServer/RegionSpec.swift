/// The API's contract, `openapi.yaml`, embedded at build time: served at
/// `GET /openapi.yaml` and read by the tests that hold the code to it.
public enum RegionSpec {
    /// The bytes of `openapi.yaml`.
    public static var openapi: [UInt8] { PackageResources.openapi_yaml }
}
