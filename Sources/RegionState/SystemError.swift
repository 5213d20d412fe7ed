internal import Glibc

/// A failed system call: which call, on which path, with which errno.
public struct SystemError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The call, such as `fsync`.
    public var call: String
    /// The path it was made on.
    public var path: String
    /// The `errno` it failed with.
    public var errno: Int32

    /// Makes an error.
    public init(call: String, path: String, errno: Int32) {
        self.call = call
        self.path = path
        self.errno = errno
    }

    public var description: String {
        "\(call)(\(path)) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
