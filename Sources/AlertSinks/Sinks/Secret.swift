import Foundation
import Glibc

/// A credential named by reference (`file:/path` or `env:NAME`), never written inline,
/// so that config files and process listings do not carry tokens.
public struct Secret: Sendable, CustomStringConvertible {
    public enum Source: Sendable, Equatable {
        case file(String)
        case environment(String)
    }

    public let source: Source
    /// The resolved text, trailing newline removed (files written by `echo` end in one).
    let value: String

    /// Resolves `reference` now, so a missing file or variable fails at start-up, not at the first alert.
    public init(_ reference: String) throws(SecretError) {
        if reference.hasPrefix("file:") {
            let path = String(reference.dropFirst(5))
            source = .file(path)
            value = try Self.readFile(path)
        } else if reference.hasPrefix("env:") {
            let name = String(reference.dropFirst(4))
            source = .environment(name)
            guard !name.isEmpty, let raw = getenv(name) else {
                throw SecretError(reference: reference, reason: "environment variable \(name) is not set")
            }
            value = String(cString: raw)
        } else {
            throw SecretError(reference: "(inline)", reason: "secrets must be given as file:/path or env:NAME, not inline")
        }
        if value.isEmpty { throw SecretError(reference: reference, reason: "the secret is empty") }
    }

    /// The value's bytes; a Standard Webhooks `whsec_` secret is base64 after the prefix.
    var signingKey: [UInt8] {
        if value.hasPrefix("whsec_"), let key = Data(base64Encoded: String(value.dropFirst(6))) { return Array(key) }
        return Array(value.utf8)
    }

    /// Never the value: secrets end up in logs through string interpolation.
    public var description: String {
        switch source {
        case .file(let path): return "file:\(path)"
        case .environment(let name): return "env:\(name)"
        }
    }

    private static func readFile(_ path: String) throws(SecretError) -> String {
        guard let file = fopen(path, "r") else {
            throw SecretError(reference: "file:\(path)", reason: String(cString: strerror(errno)))
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n == 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
            if bytes.count > 1 << 20 { throw SecretError(reference: "file:\(path)", reason: "file is larger than 1 MiB") }
        }
        while let last = bytes.last, last == 0x0A || last == 0x0D || last == 0x20 { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}

public struct SecretError: Error, CustomStringConvertible {
    public var reference: String
    public var reason: String
    public var description: String { "secret \(reference): \(reason)" }
}
