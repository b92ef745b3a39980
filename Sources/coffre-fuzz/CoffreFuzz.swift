import FuzzTargets
import Foundation

// Two builds of one program. `Scripts/fuzz` builds it with libFuzzer and AddressSanitizer
// (`-sanitize=fuzzer,address -DCOFFRE_LIBFUZZER`): `main` hands the command line to
// libFuzzer's driver, which feeds inputs to the target named by `COFFRE_FUZZ_TARGET`. The
// ordinary build replays files through a target, and writes the seed corpus.

#if COFFRE_LIBFUZZER
import CLibFuzzer

nonisolated(unsafe) private var selected = FuzzTarget.fileFormat

@main
struct CoffreFuzz {
    static func main() {
        let name = ProcessInfo.processInfo.environment["COFFRE_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            FileHandle.standardError.write(Data("set COFFRE_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
            exit(2)
        }
        selected = target
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzerTestOneInput($0, $1) })
    }
}

/// One input. Also libFuzzer's named entry point, which its archive's own `main` refers to
/// (that `main` is not the one that runs: SwiftPM points the program's at `CoffreFuzz.main`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    selected.run(data.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? [])
    return 0
}
#else
@main
struct CoffreFuzz {
    static let usage = """
        usage: coffre-fuzz replay TARGET FILE...   run files through a target (no crash: exit 0)
               coffre-fuzz seeds DIR               write every target's seeds to DIR/TARGET/
               coffre-fuzz list                    the targets
        Fuzzing itself needs the libFuzzer build: Scripts/fuzz (Docs/testing.md).
        """

    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch arguments.first {
        case "list":
            for target in FuzzTarget.allCases { print(target.rawValue) }
        case "seeds" where arguments.count == 2:
            for target in FuzzTarget.allCases {
                let folder = arguments[1] + "/" + target.rawValue
                try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                for (i, seed) in target.seeds().enumerated() {
                    FileManager.default.createFile(atPath: "\(folder)/seed-\(i)", contents: Data(seed))
                }
            }
        case "replay" where arguments.count >= 3:
            guard let target = FuzzTarget(rawValue: arguments[1]) else { fail("no target \(arguments[1])") }
            var accepted = 0
            for file in arguments[2...] {
                guard let data = FileManager.default.contents(atPath: file) else { fail("cannot read \(file)") }
                if target.run(Array(data)) { accepted += 1 }
            }
            print("\(target.rawValue): \(arguments.count - 2) inputs, \(accepted) accepted, no crash")
        default:
            fail(usage)
        }
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        exit(2)
    }
}
#endif
