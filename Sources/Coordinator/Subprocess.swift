import Foundation
import Protocol

/// A program run to its end with its output captured: `sbatch`, `scancel`, and the ssh and
/// shell commands that install worker bundles.
enum Subprocess {
    /// Runs `arguments` (looked up on the PATH), with `input`'s bytes as its standard input
    /// (none when nil); returns its exit status, standard output and standard error.
    static func run(_ arguments: [String], input: URL? = nil) throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = try input.map { try FileHandle(forReadingFrom: $0) } ?? FileHandle.nullDevice
        try process.run()
        // Standard error is drained on its own thread: a chatty program must not block on a full pipe.
        let errorText = Locked(Data())
        let drained = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            let data = errors.fileHandleForReading.readDataToEndOfFile()
            errorText.with { $0 = data }
            drained.signal()
        }
        let out = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        drained.wait()
        process.waitUntilExit()
        return (process.terminationStatus, out, String(decoding: errorText.with { $0 }, as: UTF8.self))
    }
}
