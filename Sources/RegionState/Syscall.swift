internal import Glibc
internal import Locking
internal import Synchronization

/// Thin wrappers over the system calls the journal makes: each retries
/// `EINTR` and throws a ``SystemError`` that names the call and the path (as swift-system's `Syscalls.swift` does).
enum Syscall {
    /// A call that changes a file or a directory, as an observer sees it once it succeeded.
    enum FileOperation: Sendable {
        /// `open` with `O_CREAT`: a new empty file under `path`, or (`truncate`) an existing one emptied.
        case create(path: String, truncate: Bool)
        case write(path: String, offset: Int, bytes: [UInt8])
        /// `fsync` or `fdatasync` of a file: its data and size are durable.
        case sync(path: String)
        case truncate(path: String, length: Int)
        case preallocate(path: String, offset: Int, length: Int)
        case rename(from: String, to: String)
        case unlink(path: String)
        /// `fsync` of a directory: its entries are durable.
        case syncDirectory(path: String)
    }

    /// Sees the operations on the files of one directory.
    typealias Observer = @Sendable (FileOperation) -> Void

    /// Observers by directory: the power-loss tests record what the journal
    /// really does. None in regiond, where each call reads `isObserved` and goes on.
    private static let observers = Locked<[String: Observer]>([:])
    /// Read before every journal write and fsync: an atomic, so that regiond,
    /// where nothing observes, never takes the observers' lock on that path.
    private static let isObserved = Atomic<Bool>(false)

    /// Has `observer` see every operation on the files in `directory` (and on
    /// the directory) until `stopObserving`; called by tests only.
    static func observe(_ directory: String, with observer: @escaping Observer) {
        observers.withLock { $0[directory] = observer }
        isObserved.store(true, ordering: .releasing)
    }

    /// Ends `observe(directory)`.
    static func stopObserving(_ directory: String) {
        let none = observers.withLock {
            $0[directory] = nil
            return $0.isEmpty
        }
        if none { isObserved.store(false, ordering: .releasing) }
    }

    /// Tells the observer of `path`'s directory, if any, about `operation` (built only then).
    private static func report(_ path: String, _ operation: @autoclosure () -> FileOperation) {
        guard isObserved.load(ordering: .acquiring) else { return }
        let directory = path.hasSuffix("/") ? path : String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        guard let observer = observers.withLock({ $0[directory] ?? $0[path] }) else { return }
        observer(operation())
    }

    /// Runs `body` until it does not fail with `EINTR`; throws on any other failure.
    private static func retrying<T: BinaryInteger>(
        _ call: String, _ path: String, _ body: () -> T
    ) throws(SystemError) -> T {
        while true {
            let result = body()
            if result != -1 { return result }
            if errno == EINTR { continue }
            throw SystemError(call: call, path: path, errno: errno)
        }
    }

    /// `open(2)`.
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o600) throws(SystemError) -> Int32 {
        let descriptor = try retrying("open", path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
        if flags & O_CREAT != 0 { report(path, .create(path: path, truncate: flags & O_TRUNC != 0)) }
        return descriptor
    }

    /// `close(2)`; not retried: on Linux the descriptor is gone even after `EINTR`.
    static func close(_ descriptor: Int32, path: String) throws(SystemError) {
        if Glibc.close(descriptor) == -1 && errno != EINTR {
            throw SystemError(call: "close", path: path, errno: errno)
        }
    }

    /// `mkdir(2)`; an existing directory is not an error.
    static func makeDirectory(_ path: String, mode: mode_t) throws(SystemError) {
        while Glibc.mkdir(path, mode) == -1 {
            switch errno {
            case EINTR: continue
            case EEXIST: return
            default: throw SystemError(call: "mkdir", path: path, errno: errno)
            }
        }
    }

    /// `write(2)` until every byte is written.
    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8], path: String) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let written = try retrying("write", path) {
                bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + done, $0.count - done) }
            }
            done += written
        }
        // Where the bytes went: the file offset before them (only looked up when observed).
        report(path, .write(path: path, offset: Int(lseek(descriptor, 0, SEEK_CUR)) - bytes.count, bytes: bytes))
    }

    /// `pwrite(2)` at `offset` until every byte is written.
    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let written = try retrying("pwrite", path) {
                bytes.withUnsafeBytes { Glibc.pwrite(descriptor, $0.baseAddress! + done, $0.count - done, off_t(offset + done)) }
            }
            done += written
        }
        report(path, .write(path: path, offset: offset, bytes: bytes))
    }

    /// `posix_fallocate(3)`: reserves the blocks of `offset..<offset + length`
    /// and extends the file over them; the new bytes read as zeros. Throws
    /// when there is no room. (It returns the error instead of setting errno.)
    static func preallocate(_ descriptor: Int32, offset: Int, length: Int, path: String) throws(SystemError) {
        var result: Int32
        repeat {
            result = Glibc.posix_fallocate(descriptor, off_t(offset), off_t(length))
        } while result == EINTR
        if result != 0 { throw SystemError(call: "posix_fallocate", path: path, errno: result) }
        report(path, .preallocate(path: path, offset: offset, length: length))
    }

    /// Reads a whole file: `open`, `fstat`, `read(2)` until end of file.
    static func readAll(_ path: String) throws(SystemError) -> [UInt8] {
        let descriptor = try open(path, O_RDONLY)
        defer { _ = Glibc.close(descriptor) }
        var status = stat()
        _ = try retrying("fstat", path) { fstat(descriptor, &status) }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var done = 0
        while true {
            if done == bytes.count {
                // The file may have grown since fstat: read on in chunks.
                bytes.append(contentsOf: repeatElement(0, count: 65_536))
            }
            let count = try retrying("read", path) {
                bytes.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + done, $0.count - done) }
            }
            if count == 0 { break }
            done += count
        }
        bytes.removeSubrange(done...)
        return bytes
    }

    /// `fsync(2)`.
    static func fsync(_ descriptor: Int32, path: String) throws(SystemError) {
        _ = try retrying("fsync", path) { Glibc.fsync(descriptor) }
        report(path, .sync(path: path))
    }

    /// `fdatasync(2)`: the data and what reading it back needs (the size, the
    /// block map), without the timestamps `fsync` would also write.
    static func fdatasync(_ descriptor: Int32, path: String) throws(SystemError) {
        _ = try retrying("fdatasync", path) { Glibc.fdatasync(descriptor) }
        report(path, .sync(path: path))
    }

    /// `ftruncate(2)`.
    static func truncate(_ descriptor: Int32, length: Int, path: String) throws(SystemError) {
        _ = try retrying("ftruncate", path) { Glibc.ftruncate(descriptor, off_t(length)) }
        report(path, .truncate(path: path, length: length))
    }

    /// `rename(2)`; the error names the destination.
    static func rename(_ source: String, to destination: String) throws(SystemError) {
        _ = try retrying("rename", "\(source) -> \(destination)") { Glibc.rename(source, destination) }
        report(source, .rename(from: source, to: destination))
    }

    /// `unlink(2)`; a file that is already gone is not an error.
    static func unlink(_ path: String) throws(SystemError) {
        while Glibc.unlink(path) == -1 {
            switch errno {
            case EINTR: continue
            case ENOENT: return
            default: throw SystemError(call: "unlink", path: path, errno: errno)
            }
        }
        report(path, .unlink(path: path))
    }

    /// Makes a directory's entries durable: `open(O_DIRECTORY)` and `fsync(2)`,
    /// needed after creating, renaming or unlinking a file in it.
    static func fsyncDirectory(_ path: String) throws(SystemError) {
        let descriptor = try open(path, O_RDONLY | O_DIRECTORY)
        defer { _ = Glibc.close(descriptor) }
        _ = try retrying("fsync", path) { Glibc.fsync(descriptor) }
        report(path, .syncDirectory(path: path))
    }

    /// `flock(LOCK_EX | LOCK_NB)`: false when another open file holds the lock.
    static func tryLockExclusive(_ descriptor: Int32, path: String) throws(SystemError) -> Bool {
        // `flock` also names a struct in Glibc; this picks the function.
        let lock: (Int32, Int32) -> Int32 = Glibc.flock(_:_:)
        while lock(descriptor, LOCK_EX | LOCK_NB) == -1 {
            switch errno {
            case EINTR: continue
            case EWOULDBLOCK: return false
            default: throw SystemError(call: "flock", path: path, errno: errno)
            }
        }
        return true
    }

    /// `flock(LOCK_UN)`: releases the lock of the open file, for every
    /// descriptor sharing it (a forked child's copy too). Best effort: the
    /// only failure, a bad descriptor, means there is no lock to release.
    static func unlock(_ descriptor: Int32) {
        let lock: (Int32, Int32) -> Int32 = Glibc.flock(_:_:)
        while lock(descriptor, LOCK_UN) == -1 && errno == EINTR {}
    }

    /// The names in a directory, without `.` and `..` (`opendir`/`readdir`).
    static func listDirectory(_ path: String) throws(SystemError) -> [String] {
        guard let stream = opendir(path) else {
            throw SystemError(call: "opendir", path: path, errno: errno)
        }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            // d_name is a fixed-size C array imported as a tuple; read it as a C string.
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
