#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension RuleSet {
    /// Where rules are looked for when no directory is given: `$IPSIGHT_RULES`,
    /// `/etc/ipsight/rules`, `rules/` beside the installed binary's `share`, the
    /// checkout a binary was built in, and `./rules`.
    public static func defaultDirectory() -> String? {
        var candidates: [String] = []
        if let env = getenv("IPSIGHT_RULES") { candidates.append(String(cString: env)) }
        candidates.append("/etc/ipsight/rules")
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if n > 0 {
            let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            var dir = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast()
            candidates.append(dir.joined(separator: "/") + "/../share/ipsight/rules")
            dir = dir.dropLast()
            candidates.append(dir.joined(separator: "/") + "/share/ipsight/rules")
            // A binary built in a source checkout: .build/<triple>/<configuration>/ipsight.
            for _ in 0..<3 {
                let root = dir.joined(separator: "/")
                if access(root + "/Package.swift", F_OK) == 0 { candidates.append(root + "/rules") }
                dir = dir.dropLast()
            }
        }
        candidates.append("rules")
        for path in candidates {
            var st = stat()
            if stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { return path }
        }
        return nil
    }
}
