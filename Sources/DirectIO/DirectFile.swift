public import CoffreModel

#if canImport(Glibc)
public import Glibc
#endif

/// Direct I/O (`O_DIRECT`) for files written front to back: shard bodies on a storage node,
/// downloads on a client.
///
/// Why: on this project's machines a buffered write costs 1–4 ns per byte of kernel CPU
/// (allocating, zeroing and copying into page-cache pages: `copy_folio_from_iter_atomic` and
/// `clear_page_erms` top the profiles) against 0.06 ns for copying into an aligned bounce
/// buffer, and neither a storage node nor a finished download reads those pages again soon
/// (Docs/performance.md). Buffers, offsets and lengths must be aligned to the device's logical
/// block size; 4096 covers every size in use (512 and 4096). File systems that refuse
/// `O_DIRECT` (tmpfs) get ordinary buffered I/O, silently.
public enum DirectIO {
    /// Alignment of buffers, offsets and lengths.
    public static let alignment = 4096

    /// `O_DIRECT`, which Swift's Glibc module does not export (its value depends on the
    /// architecture).
    #if arch(arm64) || arch(arm)
    public static let flag: Int32 = 0o200000
    #else
    public static let flag: Int32 = 0o40000
    #endif

    /// `count` rounded up to the alignment.
    public static func roundUp(_ count: Int) -> Int { (count + alignment - 1) / alignment * alignment }

    /// Bytes from `pointer` to the next aligned address (0 when it is aligned).
    public static func padding(_ pointer: UnsafeRawPointer?) -> Int {
        let misalignment = Int(bitPattern: pointer) % alignment
        return misalignment == 0 ? 0 : alignment - misalignment
    }

    /// Whether `pointer` is aligned for direct I/O.
    public static func isAligned(_ pointer: UnsafeRawPointer?) -> Bool {
        Int(bitPattern: pointer) % alignment == 0
    }

    /// Opens `path` with `flags | O_DIRECT`, or without `O_DIRECT` when the file system
    /// refuses it. Returns the descriptor (negative on failure, `errno` set) and whether
    /// direct I/O is on.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) -> (fd: Int32, direct: Bool) {
        let fd = Glibc.open(path, flags | flag | O_CLOEXEC, mode)
        if fd >= 0 || errno != EINVAL { return (fd, fd >= 0) }
        return (Glibc.open(path, flags | O_CLOEXEC, mode), false)
    }
}

/// An error of a file operation, with the path and the system's reason.
public struct FileIOError: CodedError {
    public let code: ErrorCode
    public let message: String

    init(_ operation: String, _ path: String, errno number: Int32 = errno) {
        code = number == ENOSPC ? .nodeFull : .storageFailure
        message = "\(operation) \(path): \(String(cString: strerror(number)))"
    }

    public var description: String { "\(code): \(message)" }
}

/// A file written front to back, with direct I/O where the file system allows it.
///
/// Bytes are gathered in an aligned buffer of `blockSize` and written a block at a time; the
/// last block is padded with zeros to the alignment and the file cut back to its length by
/// `finish`. Use from one task at a time; `finish` or `discard` it.
public final class SequentialFileWriter {
    public let path: String
    /// Whether direct I/O is on (false on file systems that refuse it).
    public private(set) var direct: Bool
    private var fd: Int32
    /// The aligned bounce buffer, allocated on first use (an aligned body may never need it).
    private var block = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private let blockSize: Int
    /// Bytes gathered in `block`, and where they go in the file.
    private var filled = 0
    private var blockOffset = 0
    /// Bytes handed to `write` so far.
    public private(set) var length = 0

    /// Creates (or truncates) `path`.
    /// - Parameter blockSize: bytes per write to the kernel; a multiple of the alignment.
    public init(creating path: String, blockSize: Int = 4 << 20) throws(FileIOError) {
        precondition(blockSize >= DirectIO.alignment)
        precondition(blockSize > 0 && blockSize % DirectIO.alignment == 0)
        self.path = path
        let (fd, direct) = DirectIO.open(path, O_WRONLY | O_CREAT | O_TRUNC)
        guard fd >= 0 else { throw FileIOError("create", path) }
        self.fd = fd
        self.direct = direct
        self.blockSize = blockSize
    }

    deinit {
        if fd >= 0 { close(fd) }
        block.deallocate()
    }

    /// Appends bytes.
    ///
    /// When nothing is gathered and `bytes` starts at an aligned address, its aligned part
    /// goes to the disk straight from the caller's memory, without the bounce buffer.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(FileIOError) {
        var offset = 0
        if direct && filled == 0 && DirectIO.isAligned(bytes.baseAddress) && bytes.count >= DirectIO.alignment {
            offset = bytes.count / DirectIO.alignment * DirectIO.alignment
            try writeAll(UnsafeRawBufferPointer(rebasing: bytes[..<offset]), at: blockOffset)
            blockOffset += offset
        }
        if offset < bytes.count && block.baseAddress == nil {
            block = .allocate(byteCount: blockSize, alignment: DirectIO.alignment)
        }
        while offset < bytes.count {
            let count = min(block.count - filled, bytes.count - offset)
            UnsafeMutableRawBufferPointer(rebasing: block[filled..<(filled + count)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)]))
            filled += count
            offset += count
            if filled == block.count { try flush(padded: block.count) }
        }
        length += bytes.count
    }

    /// Writes what is gathered, cuts the file to its length, optionally `fdatasync`s it, and
    /// closes it.
    public func finish(sync: Bool) throws(FileIOError) {
        let padded = direct ? DirectIO.roundUp(filled) : filled
        if padded > 0 && block.baseAddress == nil {
            block = .allocate(byteCount: blockSize, alignment: DirectIO.alignment)
        }
        if padded > filled {
            UnsafeMutableRawBufferPointer(rebasing: block[filled..<padded]).initializeMemory(as: UInt8.self, repeating: 0)
        }
        let padding = padded - filled
        if padded > 0 { try flush(padded: padded) }
        // Decided before the flush, which may turn direct I/O off (refused at the first
        // write) after the padding went out.
        if padding > 0 && ftruncate(fd, off_t(length)) != 0 {
            throw FileIOError("truncate", path)
        }
        if sync && fdatasync(fd) != 0 { throw FileIOError("fdatasync", path) }
        let result = close(fd)
        fd = -1
        guard result == 0 else { throw FileIOError("close", path) }
    }

    /// Closes the file without finishing it (the caller removes it).
    public func discard() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    /// Writes the first `padded` bytes of the block at the position of its first byte.
    private func flush(padded: Int) throws(FileIOError) {
        try writeAll(UnsafeRawBufferPointer(rebasing: block[..<padded]), at: blockOffset)
        blockOffset += filled
        filled = 0
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer, at start: Int) throws(FileIOError) {
        var written = 0
        while written < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + written, bytes.count - written, off_t(start + written))
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EINVAL && direct && start == 0 && written == 0 {
                // Some file systems accept O_DIRECT at open and refuse it at write.
                direct = false
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~DirectIO.flag)
                continue
            }
            guard n > 0 else { throw FileIOError("write", path) }
            written += n
        }
    }
}
