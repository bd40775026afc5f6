import Testing
@testable import Rules

@Suite struct RuleFileParserTests {
    func error(_ text: String) -> RuleFileError? {
        do {
            _ = try RuleFileParser.parse(text, path: "x.rules")
            return nil
        } catch {
            return error
        }
    }

    @Test func errorsCarryTheFileAndLine() {
        let e = error("service = a\nidentifiers = a\n[r]\noutcome = success\nmatch = Accepted <bogus> for <user>\n")
        #expect(e?.line == 5)
        #expect(e?.description.hasPrefix("x.rules:5: ") == true)
        #expect(e?.message.contains("unknown placeholder") == true)
    }

    @Test(arguments: [
        ("service = a\nidentifiers = a\n[r]\noutcome = maybe\nmatch = x <user>\n", 4),
        ("service = a\nidentifiers = a\n[r]\noutcome = success\n", 3),
        ("identifiers = a\n[r]\n", 2),
        ("service = a\nidentifiers = a\njournal = _COMM=a\n[r]\noutcome = success\nmatch = x <user>\n", 1),
        ("service = a\nidentifiers = a\ntrusted = COMM=a\n", 3),
        ("service = a\nidentifiers = a\n[r]\noutcome = success\nmatch = x <user>\nexample = x y\n", 6),
        ("service = a\nidentifiers = a\n[r]\noutcome = success\nmatch = x <user>\nexample = x y\nexpect = user=y\n", 7),
        ("service = a\nidentifiers = a\nbogus\n", 3),
    ])
    func malformedFilesAreRejected(text: String, line: Int) {
        #expect(error(text)?.line == line, "\(String(describing: error(text)))")
    }

    @Test(arguments: [
        "Accepted <user> <user> from <ip>",                 // captured twice
        "Invalid user <user> from <any> port <any> x <port>", // three free parts before the end
        "for <user> from <ip> id <text> end <any>",         // a second free part and no bounded tail
        "x <word>[<ip>]",                                   // a word can contain '['
        "<user> <quoted> <any>",                            // unbounded text after free text
        "<user>",                                           // nothing of the daemon's to anchor on
        "a <ip><port>",                                     // placeholders without text between
        "trailing \\",
    ])
    func unsafePatternsDoNotCompile(pattern: String) {
        #expect(throws: Pattern.CompileError.self) { try Pattern(pattern) }
    }

    @Test func patternErrorsPointAtTheColumn() {
        do {
            _ = try Pattern("Accepted <method> for <user> from <nope>")
            Issue.record("compiled")
        } catch {
            #expect(error.column == 35)
        }
    }

    @Test func literalAngleBracketsAndEscapes() throws {
        let p = try Pattern("user=<<user>>, rip=<ip>, lip=<any>")
        var captures = Captures()
        let text = Array("user=<a b>, rip=192.0.2.1, lip=x".utf8)
        let matched = text.withUnsafeBytes { p.match($0, &captures) }
        #expect(matched == .matched)
        #expect(captures.user == 6..<9)
    }
}
