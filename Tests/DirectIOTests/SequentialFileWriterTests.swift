import DirectIO
import Foundation
import Testing
import TestSupport

@Suite struct SequentialFileWriterTests {
    /// Lengths around the alignment and the block size, where padding and truncation bite.
    static let lengths = [0, 1, 4095, 4096, 4097, 65_536, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) - 7]

    static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    @Test(arguments: lengths)
    func writesExactlyTheBytesOnDisk(length: Int) async throws {
        try await withTemporaryDirectory { folder in
            let path = folder + "/file"
            let data = Self.bytes(length, seed: UInt64(length))
            let writer = try SequentialFileWriter(creating: path, blockSize: 1 << 20)
            // Odd piece sizes, so that pieces straddle blocks.
            var offset = 0
            var piece = 1
            while offset < data.count {
                let count = min(piece, data.count - offset)
                try data[offset..<(offset + count)].withUnsafeBytes { try writer.write($0) }
                offset += count
                piece = piece * 3 + 7
            }
            try writer.finish(sync: true)
            #expect(writer.length == length)
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(data))
        }
    }

    /// An aligned body goes to the disk from the caller's memory; the tail through the
    /// bounce buffer; more bytes after it go on through the bounce buffer.
    @Test(arguments: [4096, 4097, 10_000, 1 << 20, (1 << 20) + 4095])
    func writesAlignedBodiesWithoutTheBounceBuffer(length: Int) async throws {
        try await withTemporaryDirectory { folder in
            let data = Self.bytes(length, seed: UInt64(length) &* 31)
            let aligned = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: DirectIO.alignment)
            defer { aligned.deallocate() }
            aligned.copyBytes(from: data)
            let writer = try SequentialFileWriter(creating: folder + "/file", blockSize: DirectIO.alignment)
            try writer.write(UnsafeRawBufferPointer(aligned))
            try [UInt8]([1, 2, 3]).withUnsafeBytes { try writer.write($0) }
            try writer.finish(sync: true)
            #expect(try Data(contentsOf: URL(fileURLWithPath: folder + "/file")) == Data(data + [1, 2, 3]))
        }
    }

    /// Kernels before 6.6 refuse O_DIRECT on tmpfs (the writer then falls back to buffered
    /// I/O); newer ones accept it. Either way the bytes must come out right.
    @Test func writesOnDiskAndOnTmpfs() async throws {
        try await withTemporaryDirectory { folder in
            let writer = try SequentialFileWriter(creating: folder + "/file")
            try writer.finish(sync: false)
            // The temporary folder is on ext4 here and in CI; a disk that refuses O_DIRECT
            // would make the writer buffered, which the rest of the suite still covers.
            print("direct I/O on \(folder): \(writer.direct)")
        }
        guard FileManager.default.isWritableFile(atPath: "/dev/shm") else { return }
        let path = "/dev/shm/coffre-direct-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let data = Self.bytes(10_000, seed: 7)
        let writer = try SequentialFileWriter(creating: path)
        print("direct I/O on /dev/shm: \(writer.direct)")
        try data.withUnsafeBytes { try writer.write($0) }
        try writer.finish(sync: true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(data))
    }

    @Test func refusesAFolderThatDoesNotExistWithTheReason() {
        #expect {
            _ = try SequentialFileWriter(creating: "/nonexistent-coffre-folder/file")
        } throws: { error in
            guard let error = error as? FileIOError else { return false }
            return error.code == .storageFailure && error.message.contains("No such file")
        }
    }

    @Test func discardLeavesTheCallerToRemoveTheFile() async throws {
        try await withTemporaryDirectory { folder in
            let writer = try SequentialFileWriter(creating: folder + "/file")
            try Self.bytes(5000, seed: 1).withUnsafeBytes { try writer.write($0) }
            writer.discard()
            #expect(FileManager.default.fileExists(atPath: folder + "/file"))
        }
    }
}
