import Testing
@testable import IPSightCore

/// The line structure config and rule files share.
@Suite struct INITextTests {
    @Test func sectionsEntriesCommentsAndAnyLineEnd() throws {
        let text = "# comment\r\nservice = sshd\r\n\r\n[ accepted ]\nmatch = Accepted <method> # not a comment here\n  key=  value  \n"
        let lines = try INIText.lines(text, inlineComments: false)
        #expect(lines.map(\.line) == [2, 4, 5, 6])
        #expect(lines.map(\.1) == [.entry(key: "service", value: "sshd"), .section("accepted"),
                                   .entry(key: "match", value: "Accepted <method> # not a comment here"),
                                   .entry(key: "key", value: "value")])
    }

    @Test func inlineCommentsEndOutsideQuotes() throws {
        let lines = try INIText.lines("a = 1 # one\nb = \"x # y\" # z\n", inlineComments: true)
        #expect(lines.map(\.1) == [.entry(key: "a", value: "1"), .entry(key: "b", value: "\"x # y\"")])
    }

    @Test func malformedLinesNameTheirNumber() {
        #expect(throws: INIText.SyntaxError(line: 2, message: "expected 'key = value'")) {
            try INIText.lines("a = 1\njust words\n", inlineComments: true)
        }
        #expect(throws: INIText.SyntaxError(line: 1, message: "a section header looks like [name]")) {
            try INIText.lines("[open\n", inlineComments: false)
        }
        #expect(throws: INIText.SyntaxError(line: 3, message: "a section header looks like [name]")) {
            try INIText.lines("\n\n[]\n", inlineComments: false)
        }
    }
}
